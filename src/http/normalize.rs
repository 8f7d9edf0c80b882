//! Request-path normalization before routing (RFC 3986 §6.2.2), so that a route sees one form of
//! every path: `/%61dmin`, `//admin` and `/x/../admin` are all `/admin` to the router, or refused.
//!
//! Input: the bytes of [`RequestHead::path`](super::RequestHead::path), which is the path *and* the
//! query of the request-target: origin form as sent, or for an absolute-form target the part after
//! the authority (which may be empty or start with `?`; `path_needs_slash` covers that case). An
//! asterisk-form target (`*`, OPTIONS only) is the single byte `*`. Everything from the first `?` on
//! is the query and is copied unchanged.
//!
//! Rules applied to the path, in order of effect:
//! - percent-encoded unreserved characters (ALPHA / DIGIT / `-` / `.` / `_` / `~`) are decoded and
//!   every other percent-encoding gets uppercase hex digits (`%2f` → `%2F`);
//! - `%2F`, `%5C` and a raw `\` follow [`EncodedSeparators`]; NUL (raw or `%00`) is always refused;
//! - repeated slashes are merged when [`Options::merge_slashes`] is set (a trailing slash is kept);
//! - `.` and `..` segments, including those that are only dots once decoded (`%2e%2E`), follow
//!   [`DotSegments`]; `..` can never climb above the root;
//! - a raw `#` in the path is refused: a request-target has no fragment, and an upstream that cuts the
//!   path at `#` would resolve `..` segments differently than the router did.
//!
//! Other bytes are kept as they are (the request-line grammar is httparse's business).
//!
//! Errors: a [`PathError`], a small `Copy` enum; every variant is the client's fault (400).
//!
//! Performance: a path that is already normal costs one scan over its bytes, stopping at `?`, with
//! no allocation and no copy ([`Normalized::Unchanged`] borrows the input). Only an abnormal path is
//! written to the caller's buffer, which is cleared first and never grows past the input's length,
//! so a buffer reused across requests allocates at most once per connection.

use serde::Deserialize;

/// What to do with `.` and `..` segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DotSegments {
    /// Refuse the request ([`PathError::DotSegment`]). No client needs to send them, and routing
    /// and the upstream cannot disagree about a path that has none.
    #[default]
    Reject,
    /// Remove them (RFC 3986 §5.2.4 `remove_dot_segments`); `..` above the root is refused
    /// ([`PathError::AboveRoot`]). A path ending in `.` or `..` keeps a trailing slash (`/a/b/..` →
    /// `/a/`).
    Resolve,
}

/// What to do with `%2F` (encoded `/`), `%5C` (encoded `\`) and a raw `\` in the path.
///
/// Only [`Reject`](Self::Reject) is safe whatever the upstream does with these bytes. The others
/// depend on the upstream, and on the normalized path being the one forwarded:
/// - an upstream that decodes `%2F` before splitting the path (or one that treats `\` as `/`, as
///   Windows servers do) sees separators that the router did not, so `/public%2F..%2Fadmin` or
///   `/public\..\admin` can reach a resource the route was not meant to serve;
/// - with [`Decode`](Self::Decode) the router sees the decoded `/`, but an upstream that keeps
///   `%2F` as data would be sent a different path than the client meant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodedSeparators {
    /// Refuse the request ([`PathError::EncodedSeparator`], [`PathError::Backslash`]).
    #[default]
    Reject,
    /// Keep them: `%2F`/`%5C` stay encoded (hex uppercased) and are data inside a segment; a raw `\`
    /// stays as it is.
    Keep,
    /// Decode `%2F` to `/`, which then separates segments like any other slash (so it is merged and
    /// takes part in dot-segment handling: `/a%2F%2E%2E%2Fb` is `/a/../b`). Decode `%5C` to a raw
    /// `\`, which, like a raw `\`, is data inside a segment: the router only splits on `/`.
    Decode,
}

/// Normalization options. [`Default`] is the secure choice: dot segments and encoded separators
/// refused, slashes merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Merge runs of `/` into one (`//a///b` → `/a/b`).
    pub merge_slashes: bool,
    pub dot_segments: DotSegments,
    pub encoded_separators: EncodedSeparators,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            merge_slashes: true,
            dot_segments: DotSegments::Reject,
            encoded_separators: EncodedSeparators::Reject,
        }
    }
}

/// Why a path was refused. Every variant is a client error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// NUL in the path, raw or as `%00`.
    Nul,
    /// `%2F` or `%5C` under [`EncodedSeparators::Reject`].
    EncodedSeparator,
    /// A raw `\` under [`EncodedSeparators::Reject`].
    Backslash,
    /// A `.` or `..` segment under [`DotSegments::Reject`].
    DotSegment,
    /// A `..` segment that would climb above the root.
    AboveRoot,
    /// A raw `#` in the path.
    Fragment,
    /// The target is none of: empty, `*`, starting with `/` or with `?`.
    NotAbsolute,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::BadEscape => "malformed percent-encoding in the path",
            PathError::Nul => "NUL in the path",
            PathError::EncodedSeparator => "encoded '/' or '\\' in the path",
            PathError::Backslash => "backslash in the path",
            PathError::DotSegment => "'.' or '..' segment in the path",
            PathError::AboveRoot => "'..' segment above the root of the path",
            PathError::Fragment => "'#' in the path",
            PathError::NotAbsolute => "the path does not start with '/'",
        }
    }
}

/// The result of [`normalize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalized<'a> {
    /// The target was already normal: route and forward it as it is.
    Unchanged(&'a [u8]),
    /// The normalized target (path and query) is in the `out` buffer given to [`normalize`].
    Rewritten,
}

impl<'a> Normalized<'a> {
    /// The normalized target: the input, or `out` (the buffer given to [`normalize`]).
    #[inline]
    pub fn bytes<'s>(self, out: &'s [u8]) -> &'s [u8]
    where
        'a: 's,
    {
        match self {
            Normalized::Unchanged(t) => t,
            Normalized::Rewritten => out,
        }
    }
}

/// Normalizes `target` (path and query; see the module header). An already normal target is
/// [`Normalized::Unchanged`] and `out` is left alone; otherwise `out` is cleared and receives the
/// normalized path followed by the unchanged query. On error `out` holds unspecified bytes.
///
/// An empty target, one starting with `?` (absolute form without a path) and `*` are returned
/// unchanged: they have no path to normalize.
#[inline]
pub fn normalize<'a>(
    target: &'a [u8],
    opts: &Options,
    out: &mut Vec<u8>,
) -> Result<Normalized<'a>, PathError> {
    match target.first() {
        Some(b'/') => {}
        None | Some(b'?') => return Ok(Normalized::Unchanged(target)),
        Some(b'*') if target.len() == 1 => return Ok(Normalized::Unchanged(target)),
        Some(_) => return Err(PathError::NotAbsolute),
    }
    if is_normal(target, opts) {
        return Ok(Normalized::Unchanged(target));
    }
    rewrite(target, opts, out)?;
    Ok(Normalized::Rewritten)
}

// Byte classes for the fast scan.
const PLAIN: u8 = 0;
const SLASH: u8 = 1;
const PERCENT: u8 = 2;
const QUERY: u8 = 3;
const BACKSLASH: u8 = 4;
/// NUL and `#`: never in a normal path.
const BAD: u8 = 5;

static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t[b'?' as usize] = QUERY;
    t[b'\\' as usize] = BACKSLASH;
    t[0] = BAD;
    t[b'#' as usize] = BAD;
    t
};

static UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    t
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

const NOT_HEX: u8 = 0xFF;

/// Values of the uppercase hex digits; [`NOT_HEX`] for every other byte (lowercase included: a
/// lowercase escape is not normal).
static UPPER_HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        t[HEX_UPPER[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether `seg` is `.` or `..` (raw dots: the fast scan has no decoded dots).
#[inline]
fn is_dots(seg: &[u8]) -> bool {
    matches!(seg, b"." | b"..")
}

/// Whether normalizing `t` (which starts with `/`) would give `t` back without error. Exact:
/// `true` if and only if [`rewrite`] would write `t` itself (checked by a property test).
#[inline]
fn is_normal(t: &[u8], opts: &Options) -> bool {
    let n = t.len();
    let mut seg = 1;
    let mut i = 1;
    while i < n {
        match CLASS[t[i] as usize] {
            PLAIN => {}
            SLASH => {
                if (i == seg && opts.merge_slashes) || is_dots(&t[seg..i]) {
                    return false;
                }
                seg = i + 1;
            }
            PERCENT => {
                if i + 2 >= n {
                    return false;
                }
                let (hi, lo) = (UPPER_HEX[t[i + 1] as usize], UPPER_HEX[t[i + 2] as usize]);
                if hi == NOT_HEX || lo == NOT_HEX {
                    return false;
                }
                let v = (hi << 4) | lo;
                if UNRESERVED[v as usize] || v == 0 {
                    return false;
                }
                if (v == b'/' || v == b'\\') && opts.encoded_separators != EncodedSeparators::Keep {
                    return false;
                }
                i += 2;
            }
            QUERY => return !is_dots(&t[seg..i]),
            BACKSLASH => {
                if opts.encoded_separators == EncodedSeparators::Reject {
                    return false;
                }
            }
            _ => return false,
        }
        i += 1;
    }
    !is_dots(&t[seg..])
}

/// Writes the normalized form of `t` (starting with `/`) to `out`. Cold: only abnormal paths get
/// here.
#[cold]
#[inline(never)]
fn rewrite(t: &[u8], opts: &Options, out: &mut Vec<u8>) -> Result<(), PathError> {
    let q = t.iter().position(|&b| b == b'?').unwrap_or(t.len());
    let (path, query) = t.split_at(q);
    out.clear();
    out.reserve(t.len());
    let mut w = Writer {
        out,
        opts,
        seg: 1,
        dots: 0,
        other: false,
    };
    w.out.push(b'/');
    let mut i = 1;
    while i < path.len() {
        let b = path[i];
        match b {
            b'/' => w.end_segment(false)?,
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    path.get(i + 1).copied().and_then(hex_value),
                    path.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::BadEscape);
                };
                w.escape((hi << 4) | lo)?;
                i += 2;
            }
            b'\\' => {
                if opts.encoded_separators == EncodedSeparators::Reject {
                    return Err(PathError::Backslash);
                }
                w.byte(b);
            }
            0 => return Err(PathError::Nul),
            b'#' => return Err(PathError::Fragment),
            _ => w.byte(b),
        }
        i += 1;
    }
    w.end_segment(true)?;
    out.extend_from_slice(query);
    Ok(())
}

/// Output state of [`rewrite`]. `out` always holds `/`-prefixed finished segments, then `/`, then
/// the current segment's bytes from `seg` on.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    opts: &'o Options,
    /// Where the current segment's bytes start in `out` (just after its `/`).
    seg: usize,
    /// Number of `.` bytes (raw or decoded) in the current segment, saturating.
    dots: u8,
    /// The current segment has a byte other than `.`.
    other: bool,
}

impl Writer<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        if b == b'.' {
            self.dots = self.dots.saturating_add(1);
        } else {
            self.other = true;
        }
        self.out.push(b);
    }

    /// A decoded percent-encoding.
    fn escape(&mut self, v: u8) -> Result<(), PathError> {
        if UNRESERVED[v as usize] {
            self.byte(v);
            return Ok(());
        }
        match (v, self.opts.encoded_separators) {
            (0, _) => return Err(PathError::Nul),
            (b'/' | b'\\', EncodedSeparators::Reject) => return Err(PathError::EncodedSeparator),
            (b'/', EncodedSeparators::Decode) => return self.end_segment(false),
            (b'\\', EncodedSeparators::Decode) => {
                self.byte(v);
                return Ok(());
            }
            _ => {}
        }
        self.other = true;
        self.out.extend_from_slice(&[
            b'%',
            HEX_UPPER[usize::from(v >> 4)],
            HEX_UPPER[usize::from(v & 0xF)],
        ]);
        Ok(())
    }

    /// Ends the current segment: at a `/` (`last == false`) or at the end of the path.
    fn end_segment(&mut self, last: bool) -> Result<(), PathError> {
        let (dots, other) = (self.dots, self.other);
        self.dots = 0;
        self.other = false;
        if !other && (dots == 1 || dots == 2) {
            if self.opts.dot_segments == DotSegments::Reject {
                return Err(PathError::DotSegment);
            }
            // Drop the segment; its `/` stays, as the next segment's or as a trailing slash.
            self.out.truncate(self.seg);
            if dots == 2 {
                if self.seg == 1 {
                    return Err(PathError::AboveRoot);
                }
                // `out` is ".../parent/": drop "parent/".
                let parent = self.out[..self.seg - 1]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .map_or(1, |p| p + 1);
                self.out.truncate(parent);
                self.seg = parent;
            }
            return Ok(());
        }
        if last || (self.out.len() == self.seg && self.opts.merge_slashes) {
            return Ok(());
        }
        self.out.push(b'/');
        self.seg = self.out.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Options = Options {
        merge_slashes: true,
        dot_segments: DotSegments::Reject,
        encoded_separators: EncodedSeparators::Reject,
    };
    const RESOLVE: Options = Options {
        dot_segments: DotSegments::Resolve,
        ..DEFAULT
    };
    const KEEP: Options = Options {
        encoded_separators: EncodedSeparators::Keep,
        ..DEFAULT
    };
    const DECODE: Options = Options {
        encoded_separators: EncodedSeparators::Decode,
        ..DEFAULT
    };
    const DECODE_RESOLVE: Options = Options {
        encoded_separators: EncodedSeparators::Decode,
        dot_segments: DotSegments::Resolve,
        ..DEFAULT
    };
    const NO_MERGE: Options = Options {
        merge_slashes: false,
        ..DEFAULT
    };
    const NO_MERGE_RESOLVE: Options = Options {
        merge_slashes: false,
        dot_segments: DotSegments::Resolve,
        ..DEFAULT
    };

    /// `Ok(None)`: unchanged; `Ok(Some(bytes))`: rewritten.
    fn run(t: &[u8], opts: &Options) -> Result<Option<Vec<u8>>, PathError> {
        let mut out = b"garbage from an earlier request".to_vec();
        match normalize(t, opts, &mut out)? {
            Normalized::Unchanged(u) => {
                assert_eq!(u, t);
                Ok(None)
            }
            Normalized::Rewritten => {
                assert_ne!(out, t, "rewritten to the same bytes");
                assert!(out.len() <= t.len(), "output longer than the input");
                Ok(Some(out))
            }
        }
    }

    /// The normalized bytes, whether rewritten or not.
    fn bytes(t: &[u8], opts: &Options) -> Result<Vec<u8>, PathError> {
        let mut out = Vec::new();
        normalize(t, opts, &mut out).map(|n| n.bytes(&out).to_vec())
    }

    enum Want {
        Same,
        To(&'static str),
        Err(PathError),
    }
    use PathError as E;
    use Want::{Same, To};

    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&str, Options, Want)] = &[
            // Already normal.
            ("/", DEFAULT, Same),
            ("/api/v1/users/123?x=1", DEFAULT, Same),
            ("/a/b/", DEFAULT, Same),
            ("/a/.well-known/x", DEFAULT, Same),
            ("/a/...", DEFAULT, Same),
            ("/a/..b/.c", DEFAULT, Same),
            ("/a:b@c!$&'()*+,;=", DEFAULT, Same),
            ("/%E2%82%AC", DEFAULT, Same),
            ("/a%20b", DEFAULT, Same),
            ("/a%3Fb?c", DEFAULT, Same),
            ("/caf\u{e9}", DEFAULT, Same),
            // Unreserved characters decoded, other escapes uppercased.
            ("/%61dmin", DEFAULT, To("/admin")),
            ("/%41%5a%30%39%2D%2e%5F%7E", DEFAULT, To("/AZ09-._~")),
            ("/%7euser", DEFAULT, To("/~user")),
            ("/%e2%82%ac", DEFAULT, To("/%E2%82%AC")),
            ("/a%3fb", DEFAULT, To("/a%3Fb")),
            ("/%25", DEFAULT, Same),
            ("/%2561", DEFAULT, Same),
            // Slashes merged, trailing slash kept.
            ("//admin", DEFAULT, To("/admin")),
            ("//a///b", DEFAULT, To("/a/b")),
            ("/a//", DEFAULT, To("/a/")),
            ("//", DEFAULT, To("/")),
            ("////", DEFAULT, To("/")),
            ("//a//b//", NO_MERGE, Same),
            // The query is never touched.
            ("/a//b?x=//%61", DEFAULT, To("/a/b?x=//%61")),
            ("/?x=/../%zz%2f%00#\\", DEFAULT, Same),
            ("/%61?%61", DEFAULT, To("/a?%61")),
            ("/a?", DEFAULT, Same),
            ("//?", DEFAULT, To("/?")),
            // Dot segments refused by default.
            ("/a/%2e%2E/b", DEFAULT, Want::Err(E::DotSegment)),
            ("/a/../b", DEFAULT, Want::Err(E::DotSegment)),
            ("/a/./b", DEFAULT, Want::Err(E::DotSegment)),
            ("/.", DEFAULT, Want::Err(E::DotSegment)),
            ("/a/..?x", DEFAULT, Want::Err(E::DotSegment)),
            ("/a/.%2e", DEFAULT, Want::Err(E::DotSegment)),
            // ... or resolved.
            ("/a/%2e%2E/b", RESOLVE, To("/b")),
            ("/a/b/../c", RESOLVE, To("/a/c")),
            ("/a/./b", RESOLVE, To("/a/b")),
            ("/a/b/..", RESOLVE, To("/a/")),
            ("/a/b/.", RESOLVE, To("/a/b/")),
            ("/a/..", RESOLVE, To("/")),
            ("/.", RESOLVE, To("/")),
            ("/./", RESOLVE, To("/")),
            ("/a/.//../b", RESOLVE, To("/b")),
            ("/public/../admin?x=..", RESOLVE, To("/admin?x=..")),
            ("/a/b/../../c/./d/", RESOLVE, To("/c/d/")),
            ("/..", RESOLVE, Want::Err(E::AboveRoot)),
            ("/a/../..", RESOLVE, Want::Err(E::AboveRoot)),
            ("/a/../../b", RESOLVE, Want::Err(E::AboveRoot)),
            ("/%2E%2E/etc/passwd", RESOLVE, Want::Err(E::AboveRoot)),
            // Without merging, `..` removes an empty segment (RFC 3986 §5.2.4).
            ("/a//..", NO_MERGE_RESOLVE, To("/a/")),
            ("//..", NO_MERGE_RESOLVE, To("/")),
            ("/a//../b", NO_MERGE_RESOLVE, To("/a/b")),
            ("/a//../b", RESOLVE, To("/b")),
            // Encoded separators and backslash.
            ("/a%2fb", DEFAULT, Want::Err(E::EncodedSeparator)),
            ("/a%5Cb", DEFAULT, Want::Err(E::EncodedSeparator)),
            ("/a\\b", DEFAULT, Want::Err(E::Backslash)),
            ("/a%2fb", KEEP, To("/a%2Fb")),
            ("/a%2Fb", KEEP, Same),
            ("/a%5cb", KEEP, To("/a%5Cb")),
            ("/a\\b", KEEP, Same),
            ("/a%2F..%2Fb", KEEP, Same),
            ("/a%2fb", DECODE, To("/a/b")),
            ("/a%2F%2Fb", DECODE, To("/a/b")),
            ("/a%5cb", DECODE, To("/a\\b")),
            ("/a\\b", DECODE, Same),
            ("/a%2F%2E%2E%2Fb", DECODE, Want::Err(E::DotSegment)),
            ("/a%2F%2E%2E%2Fb", DECODE_RESOLVE, To("/b")),
            ("/%2F", DECODE, To("/")),
            // NUL is always refused.
            ("/a%00b", DEFAULT, Want::Err(E::Nul)),
            ("/a%00b", KEEP, Want::Err(E::Nul)),
            ("/a%00b", DECODE, Want::Err(E::Nul)),
            ("/a\0b", KEEP, Want::Err(E::Nul)),
            // Malformed escapes.
            ("/%", DEFAULT, Want::Err(E::BadEscape)),
            ("/%4", DEFAULT, Want::Err(E::BadEscape)),
            ("/%zz", DEFAULT, Want::Err(E::BadEscape)),
            ("/%4g", DEFAULT, Want::Err(E::BadEscape)),
            ("/a%?x", DEFAULT, Want::Err(E::BadEscape)),
            ("/a%4?x", DEFAULT, Want::Err(E::BadEscape)),
            ("/%%41", DEFAULT, Want::Err(E::BadEscape)),
            // Fragment, and targets without a path.
            ("/a#b", DEFAULT, Want::Err(E::Fragment)),
            ("", DEFAULT, Same),
            ("?x=//", DEFAULT, Same),
            ("*", DEFAULT, Same),
            ("a/b", DEFAULT, Want::Err(E::NotAbsolute)),
            ("*/", DEFAULT, Want::Err(E::NotAbsolute)),
        ];
        assert!(cases.len() >= 40);
        for (input, opts, want) in cases {
            let got = run(input.as_bytes(), opts);
            let want = match want {
                Same => Ok(None),
                To(s) => Ok(Some(s.as_bytes().to_vec())),
                Want::Err(e) => Err(*e),
            };
            assert_eq!(
                got.as_ref()
                    .map(|o| o.as_deref().map(String::from_utf8_lossy)),
                want.as_ref()
                    .map(|o| o.as_deref().map(String::from_utf8_lossy)),
                "{input:?} with {opts:?}"
            );
        }
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [
            E::BadEscape,
            E::Nul,
            E::EncodedSeparator,
            E::Backslash,
            E::DotSegment,
            E::AboveRoot,
            E::Fragment,
            E::NotAbsolute,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.reason(), b.reason());
            }
        }
    }

    #[test]
    fn options_deserialize_with_secure_defaults() {
        let o: Options = toml::from_str("").unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o, DEFAULT);
        let o: Options = toml::from_str(
            "merge_slashes = false\ndot_segments = \"resolve\"\nencoded_separators = \"keep\"",
        )
        .unwrap();
        assert_eq!(
            o,
            Options {
                encoded_separators: EncodedSeparators::Keep,
                ..NO_MERGE_RESOLVE
            }
        );
        let o: Options = toml::from_str("encoded_separators = \"decode\"").unwrap();
        assert_eq!(o, DECODE);
        assert!(toml::from_str::<Options>("merge_slash = true").is_err());
        assert!(toml::from_str::<Options>("dot_segments = \"Resolve\"").is_err());
    }

    #[test]
    fn buffer_is_reused() {
        let mut out = Vec::with_capacity(64);
        let cap = out.capacity();
        for t in [&b"//a"[..], b"/%61", b"/x//y?q"] {
            assert_eq!(normalize(t, &DEFAULT, &mut out), Ok(Normalized::Rewritten));
        }
        assert_eq!(out, b"/x/y?q");
        assert_eq!(out.capacity(), cap);
    }

    const ALL: [Options; 12] = {
        let mut all = [DEFAULT; 12];
        let mut i = 0;
        while i < 12 {
            all[i] = Options {
                merge_slashes: i & 1 == 0,
                dot_segments: if i & 2 == 0 {
                    DotSegments::Reject
                } else {
                    DotSegments::Resolve
                },
                encoded_separators: match i / 4 {
                    0 => EncodedSeparators::Reject,
                    1 => EncodedSeparators::Keep,
                    _ => EncodedSeparators::Decode,
                },
            };
            i += 1;
        }
        all
    };

    /// Random targets over an alphabet of the bytes that matter.
    fn target() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            4 => proptest::sample::select(b"/.%?aZ9-~_\\#:".to_vec()).prop_map(|b| vec![b]),
            1 => proptest::sample::select(&["%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%00",
                "%61", "%7E", "%e2", "%E2", "%41%2", "%g1", ".."][..])
                .prop_map(|s| s.as_bytes().to_vec()),
            1 => proptest::num::u8::ANY.prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| {
            let mut t = vec![b'/'];
            t.extend(v.concat());
            t
        })
    }

    /// A path of random segments (no dot segments unless `dots`), as the router should see it.
    fn segments() -> impl proptest::strategy::Strategy<Value = Vec<Vec<u8>>> {
        use proptest::prelude::*;
        let seg = prop_oneof![
            6 => proptest::collection::vec(
                proptest::sample::select(b"abzAZ09-._~:@!$&'()*+,;=".to_vec()), 0..6),
            1 => proptest::sample::select(&[".", "..", "%E2%82", "%2F", "%5C", "%20"][..])
                .prop_map(|s| s.as_bytes().to_vec()),
        ];
        proptest::collection::vec(seg, 1..8)
    }

    proptest::proptest! {
        #[test]
        fn fast_scan_is_exact(t in target(), o in 0..ALL.len()) {
            let opts = &ALL[o];
            let mut out = Vec::new();
            let rewritten = rewrite(&t, opts, &mut out);
            proptest::prop_assert_eq!(
                is_normal(&t, opts),
                rewritten.is_ok() && out == t,
                "{:?}", String::from_utf8_lossy(&t)
            );
        }

        #[test]
        fn idempotent(t in target(), o in 0..ALL.len()) {
            let opts = &ALL[o];
            let mut out = Vec::new();
            if let Ok(n) = normalize(&t, opts, &mut out) {
                let once = n.bytes(&out).to_vec();
                let mut again = Vec::new();
                proptest::prop_assert_eq!(
                    normalize(&once, opts, &mut again),
                    Ok(Normalized::Unchanged(&once[..])),
                    "{:?} -> {:?}", String::from_utf8_lossy(&t), String::from_utf8_lossy(&once)
                );
            }
        }

        /// Routing sees no other form: percent-encoding unreserved characters (either hex case) and
        /// doubling slashes never changes the normalized path, nor whether it is refused.
        #[test]
        fn routing_sees_no_other_form(
            segs in segments(),
            query in proptest::option::of("[a-z%/.=&]{0,8}"),
            noise in proptest::collection::vec(proptest::num::u8::ANY, 64),
            o in 0..ALL.len(),
        ) {
            let opts = Options { merge_slashes: true, ..ALL[o] };
            let mut noise = noise.iter().cycle();
            let mut coin = || noise.next().copied().unwrap_or(0);
            let (mut plain, mut variant) = (Vec::new(), Vec::new());
            for s in &segs {
                plain.push(b'/');
                variant.push(b'/');
                let extra = usize::from(coin() % 3);
                variant.extend(std::iter::repeat_n(b'/', extra));
                let mut k = 0;
                while k < s.len() {
                    let b = s[k];
                    // Escapes in the plain path stay escapes (only their hex case may change).
                    let width = if b == b'%' { 3 } else { 1 };
                    plain.extend_from_slice(&s[k..k + width]);
                    let c = coin();
                    if width == 3 || (UNRESERVED[usize::from(b)] && c % 3 == 0) {
                        let v = if width == 3 {
                            (hex_value(s[k + 1]).unwrap_or(0) << 4) | hex_value(s[k + 2]).unwrap_or(0)
                        } else {
                            b
                        };
                        let hex = if c & 8 == 0 { b"0123456789abcdef" } else { HEX_UPPER };
                        variant.extend_from_slice(&[
                            b'%', hex[usize::from(v >> 4)], hex[usize::from(v & 0xF)],
                        ]);
                    } else {
                        variant.push(b);
                    }
                    k += width;
                }
            }
            if let Some(q) = &query {
                plain.push(b'?');
                plain.extend_from_slice(q.as_bytes());
                variant.push(b'?');
                variant.extend_from_slice(q.as_bytes());
            }
            proptest::prop_assert_eq!(
                bytes(&variant, &opts),
                bytes(&plain, &opts),
                "{:?} vs {:?}", String::from_utf8_lossy(&variant), String::from_utf8_lossy(&plain)
            );
        }
    }
}
