//! What a personal access token may do: its scope, and the one rule that
//! says whether a request fits it.

/// A token's scope. Each includes the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Reads only.
    Read,
    /// Reads, and changes the user's own things.
    Write,
    /// Everything `Write` may, and the admin routes, while the user is an admin.
    Admin,
}

/// What a request needs of its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// It reads.
    Read,
    /// It changes something.
    Write,
    /// It is an admin route.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The name, as `parse` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Whether a user may give a new token this scope: `admin` only to an admin.
    pub fn grantable_to(self, user_is_admin: bool) -> bool {
        self != Self::Admin || user_is_admin
    }

    /// Whether a request needing `need` fits this scope, for a user who is
    /// (now) an admin or not. An `admin` token of a user no longer an admin
    /// opens no admin route.
    pub fn allows(self, need: Need, user_is_admin: bool) -> bool {
        match need {
            Need::Read => true,
            Need::Write => self >= Self::Write,
            Need::Admin => self == Self::Admin && user_is_admin,
        }
    }

    /// Whether the token's user acts with an admin's powers (deleting
    /// another's post): only with an `admin` token, and only while an admin.
    pub fn acts_as_admin(self, user_is_admin: bool) -> bool {
        self == Self::Admin && user_is_admin
    }
}

impl Need {
    /// What a request with this method needs, on a route that is not an
    /// admin route: a GET (or HEAD) reads, anything else writes.
    pub fn of_method(method: &str, admin_route: bool) -> Self {
        if admin_route {
            Self::Admin
        } else if matches!(method, "GET" | "HEAD") {
            Self::Read
        } else {
            Self::Write
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_reads() {
        assert!(Scope::Read.allows(Need::Read, false));
        assert!(!Scope::Read.allows(Need::Write, false));
        assert!(!Scope::Read.allows(Need::Admin, true), "not even for an admin");
    }

    #[test]
    fn write_changes_but_does_not_administer() {
        assert!(Scope::Write.allows(Need::Read, false));
        assert!(Scope::Write.allows(Need::Write, false));
        assert!(!Scope::Write.allows(Need::Admin, true));
        assert!(!Scope::Write.acts_as_admin(true), "an admin's write token deletes only their own posts");
    }

    #[test]
    fn admin_administers_only_while_the_user_is_an_admin() {
        assert!(Scope::Admin.allows(Need::Admin, true));
        assert!(Scope::Admin.allows(Need::Write, true));
        assert!(!Scope::Admin.allows(Need::Admin, false), "demoted: the admin routes close");
        assert!(Scope::Admin.allows(Need::Write, false), "what write allows stays");
        assert!(Scope::Admin.acts_as_admin(true) && !Scope::Admin.acts_as_admin(false));
    }

    #[test]
    fn only_admins_are_given_admin_tokens() {
        assert!(Scope::Admin.grantable_to(true));
        assert!(!Scope::Admin.grantable_to(false));
        assert!(Scope::Read.grantable_to(false) && Scope::Write.grantable_to(false));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("Admin"), None);
        assert_eq!(Scope::parse(""), None);
    }

    #[test]
    fn methods_map_to_needs() {
        assert_eq!(Need::of_method("GET", false), Need::Read);
        assert_eq!(Need::of_method("HEAD", false), Need::Read);
        for m in ["POST", "PATCH", "PUT", "DELETE"] {
            assert_eq!(Need::of_method(m, false), Need::Write);
        }
        assert_eq!(Need::of_method("GET", true), Need::Admin);
    }
}
