//! Where a user may be sent after logging in: only a path on this site.

/// Longest `next` value we follow.
const MAX_LEN: usize = 2048;

/// Returns `next` when it is a local path (with its query string), and `None`
/// for anything a browser could read as another origin: scheme-relative
/// (`//evil.com`), backslash tricks (`/\evil.com`), schemes (`https:evil.com`,
/// `javascript:`), control characters or whitespace (which browsers strip),
/// and the same forms hidden behind percent-encoding.
pub fn safe_next(next: &str) -> Option<&str> {
    if next.is_empty() || next.len() > MAX_LEN {
        return None;
    }
    // Only printable ASCII, no backslash: browsers treat `\` as `/` and drop
    // tabs and newlines, which turns harmless-looking paths into hosts.
    if !next.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\') {
        return None;
    }
    if !is_local_path(next) {
        return None;
    }
    // A proxy or framework may decode once more before the browser sees it.
    let decoded = percent_decode(next);
    if decoded != next.as_bytes() {
        if decoded.iter().any(|&b| b < 0x21 || b == 0x7f || b == b'\\') {
            return None;
        }
        if !is_local_path_bytes(&decoded) {
            return None;
        }
    }
    Some(next)
}

fn is_local_path(s: &str) -> bool {
    is_local_path_bytes(s.as_bytes())
}

fn is_local_path_bytes(b: &[u8]) -> bool {
    b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept_with_their_query() {
        for ok in
            ["/", "/dashboard", "/posts/3/edit", "/admin/users?q=bob&after=4", "/a/b/../c", "/x?next=https://e.com"]
        {
            assert_eq!(safe_next(ok), Some(ok), "{ok:?}");
        }
    }

    #[test]
    fn hostile_values_are_refused() {
        let hostile = [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "\\/evil.com",
            "https://evil.com",
            "http:evil.com",
            "https:evil.com",
            "https:/evil.com",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "evil.com",
            "dashboard",
            "%2F%2Fevil.com",
            "/%2Fevil.com",
            "/%5Cevil.com",
            "/%2f%2fevil.com",
            "%2F%5Cevil.com",
            " //evil.com",
            "/ /evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n/evil.com",
            "\t//evil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/%00/evil.com",
            "/\u{0}/evil.com",
            "/ｅvil",
            "/\u{3000}/evil.com",
            "/\u{2028}/evil.com",
            "\u{feff}//evil.com",
        ];
        for bad in hostile {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), None);
    }
}
