//! Excerpts of long texts, for lists.

use std::fmt;

/// The first `n` characters of a text, cut at a word boundary, with an
/// ellipsis when cut; written without a copy of the text.
pub struct Excerpt<'a> {
    text: &'a str,
    cut: bool,
}

impl Excerpt<'_> {
    fn write(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        f.write_str(self.text)?;
        if self.cut { f.write_str("…") } else { Ok(()) }
    }
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl askama::FastWritable for Excerpt<'_> {
    fn write_into(&self, dest: &mut dyn fmt::Write, _: &dyn askama::Values) -> askama::Result<()> {
        Ok(self.write(dest)?)
    }
}

/// The first `n` characters of `text`, cut at a word boundary, with an ellipsis.
pub fn excerpt(text: &str, n: usize) -> Excerpt<'_> {
    // The byte offset of character `n`; none when the text is no longer.
    // At most `n` bytes is at most `n` characters, and when the first `n`
    // bytes are ASCII, character `n` starts at byte `n`.
    let end = if text.len() <= n {
        None
    } else if text.as_bytes()[..n].is_ascii() {
        Some(n)
    } else {
        text.char_indices().nth(n).map(|(i, _)| i)
    };
    let Some(end) = end else {
        return Excerpt { text, cut: false };
    };
    let cut = &text[..end];
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > n / 2 => &cut[..i],
        _ => cut,
    };
    Excerpt { text: cut.trim_end(), cut: true }
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    fn excerpt_s(text: &str, n: usize) -> String {
        excerpt(text, n).to_string()
    }

    #[test]
    fn excerpts_cut_at_a_word_within_the_limit() {
        assert_eq!(excerpt_s("short text", 240), "short text");
        assert_eq!(excerpt_s("exactly10!", 10), "exactly10!");
        assert_eq!(excerpt_s("one two three four", 12), "one two…");
        // No space in the second half: cut mid-word rather than lose most of it.
        assert_eq!(excerpt_s("a verylongwordindeed", 10), "a verylong…");
        // Characters, not bytes: never splits a multi-byte character.
        assert_eq!(excerpt_s("ééééé ééééé", 8), "ééééé…");
        assert_eq!(excerpt_s("ééé", 3), "ééé");
        assert_eq!(excerpt_s("ééé", 2), "éé…");
        assert_eq!(excerpt_s("abcé", 3), "abc…");
        assert_eq!(excerpt_s("ab é", 3), "ab…");
    }

    #[test]
    fn templates_write_what_display_shows() {
        use askama::FastWritable;
        for (text, n) in [("short", 240), ("one two three four", 12), ("ééééé ééééé", 8)] {
            let mut out = String::new();
            excerpt(text, n).write_into(&mut out, &()).expect("write");
            assert_eq!(out, excerpt_s(text, n));
        }
    }
}
