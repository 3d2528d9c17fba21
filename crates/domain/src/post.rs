//! A post's title and content.

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest content, in characters.
pub const CONTENT_MAX: usize = 20_000;

/// A non-empty title of at most [`TITLE_MAX`] characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostTitle(String);

/// Non-empty content of at most [`CONTENT_MAX`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostContent(String);

/// Why a title or content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// Blank title.
    #[error("Title is required")]
    TitleMissing,
    /// Title over the limit.
    #[error("Title must be at most 200 characters")]
    TitleTooLong,
    /// Blank content.
    #[error("Content is required")]
    ContentMissing,
    /// Content over the limit.
    #[error("Content must be at most 20000 characters")]
    ContentTooLong,
}

impl PostTitle {
    /// Parses a title; surrounding whitespace is dropped, control characters refused as blank.
    pub fn parse(input: &str) -> Result<Self, PostError> {
        let s: String = input.trim().chars().filter(|c| !c.is_control()).collect();
        if s.trim().is_empty() {
            return Err(PostError::TitleMissing);
        }
        if s.chars().count() > TITLE_MAX {
            return Err(PostError::TitleTooLong);
        }
        Ok(Self(s))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PostContent {
    /// Parses content; line endings are normalised to `\n`, NUL characters
    /// dropped (no database stores them in text), trailing whitespace dropped.
    pub fn parse(input: &str) -> Result<Self, PostError> {
        let s = input.replace("\r\n", "\n").replace('\0', "");
        let s = s.trim_end();
        if s.trim().is_empty() {
            return Err(PostError::ContentMissing);
        }
        if s.chars().count() > CONTENT_MAX {
            return Err(PostError::ContentTooLong);
        }
        Ok(Self(s.to_owned()))
    }

    /// The content.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(PostTitle::parse("  Hello  ").map(|t| t.0), Ok("Hello".into()));
        assert_eq!(PostTitle::parse("   "), Err(PostError::TitleMissing));
        assert_eq!(PostTitle::parse(&"t".repeat(201)), Err(PostError::TitleTooLong));
        assert!(PostTitle::parse(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn contents() {
        assert_eq!(PostContent::parse("a\r\nb\n\n").map(|c| c.0), Ok("a\nb".into()));
        assert_eq!(PostContent::parse("\n \n"), Err(PostError::ContentMissing));
        assert_eq!(PostContent::parse(&"c".repeat(20_001)), Err(PostError::ContentTooLong));
        assert_eq!(PostContent::parse("x\0y").map(|c| c.0), Ok("xy".into()));
        assert_eq!(PostContent::parse("\0 \0"), Err(PostError::ContentMissing));
    }
}
