//! Who may do what: the one place authorization is decided.

/// The signed-in person asking to act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Their user id.
    pub user_id: i64,
    /// Whether they are an administrator.
    pub is_admin: bool,
}

impl Actor {
    /// Only the author edits a post: an admin may remove it, not put words in its author's mouth.
    pub fn can_edit_post(&self, author_id: i64) -> bool {
        self.user_id == author_id
    }

    /// The author or an admin deletes a post.
    pub fn can_delete_post(&self, author_id: i64) -> bool {
        self.user_id == author_id || self.is_admin
    }

    /// Only admins enter the admin area.
    pub fn can_administer(&self) -> bool {
        self.is_admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_matrix() {
        let author = Actor { user_id: 1, is_admin: false };
        let other = Actor { user_id: 2, is_admin: false };
        let admin = Actor { user_id: 3, is_admin: true };
        assert!(author.can_edit_post(1) && author.can_delete_post(1));
        assert!(!other.can_edit_post(1) && !other.can_delete_post(1));
        assert!(!admin.can_edit_post(1) && admin.can_delete_post(1));
        assert!(admin.can_administer() && !author.can_administer());
    }
}
