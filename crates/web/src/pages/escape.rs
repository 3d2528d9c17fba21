//! The HTML escaper of every page.

use std::fmt;

/// The HTML escaper of every page (see `askama.toml`): `&`, `<`, `>`, `"`
/// and `'` become entities, so text is safe in element content and in
/// quoted attributes alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entities;

impl askama::filters::Escaper for Entities {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        let bytes = string.as_bytes();
        let mut last = 0;
        while let Some(offset) = next_special(&bytes[last..]) {
            let at = last + offset;
            let entity = match bytes[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#x27;",
            };
            dest.write_str(&string[last..at])?;
            dest.write_str(entity)?;
            last = at + 1;
        }
        dest.write_str(&string[last..])
    }
}

/// The offset of the first byte that needs an entity. `memchr` searches
/// with vector instructions, so long text without any costs little; short
/// text (names, tokens) is quicker to walk than a vector search is to set up.
fn next_special(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 32 {
        return bytes.iter().position(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''));
    }
    let first = memchr::memchr3(b'&', b'<', b'>', bytes);
    memchr::memchr2(b'"', b'\'', &bytes[..first.unwrap_or(bytes.len())]).or(first)
}

#[cfg(test)]
mod tests {
    use super::Entities;

    #[test]
    fn text_is_escaped_with_named_entities() {
        use askama::filters::Escaper as _;
        let mut out = String::new();
        Entities.write_escaped_str(&mut out, "<a href=\"x\">Tom & Jerry's</a> é").expect("write");
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt; é");
        // Each special character at every position of texts of several lengths.
        for (c, entity) in [('&', "&amp;"), ('<', "&lt;"), ('>', "&gt;"), ('"', "&quot;"), ('\'', "&#x27;")] {
            for len in [15, 16, 17, 33, 48] {
                for at in 0..len {
                    let text: String = (0..len).map(|i| if i == at { c } else { 'x' }).collect();
                    let mut out = String::new();
                    Entities.write_escaped_str(&mut out, &text).expect("write");
                    assert_eq!(out, format!("{}{entity}{}", "x".repeat(at), "x".repeat(len - at - 1)));
                }
            }
        }
    }
}
