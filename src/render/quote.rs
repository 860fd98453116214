//! Quoting for systemd unit values. Pure.
//!
//! systemd reads `ExecStart=` in three passes, so each argv word is encoded in
//! the reverse order:
//! 1. the line is split into words with C-style unquoting and unescaping
//!    (`extract_first_word(EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE)`);
//! 2. specifiers are expanded in each word (`%%` is a literal `%`);
//! 3. at exec time `$VAR`/`${VAR}` are expanded (`$$` is a literal `$`).
//!
//! So a word gets `%` → `%%` and `$` → `$$`, then is wrapped in double quotes
//! with `\` and `"` escaped and control characters (and bytes that are not
//! UTF-8) written as `\xNN`. Quoting every word also keeps a literal `;` from
//! being read as a command separator. NUL cannot be expressed and is rejected
//! by manifest validation.
//!
//! `Environment=` values go through passes 1 and 2 only: `$` stays literal.

use std::fmt::Write as _;

/// Which passes the value goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passes {
    /// Unquote, specifiers, then `$` expansion (ExecStart=).
    Exec,
    /// Unquote and specifiers (Environment=).
    Environment,
}

/// One ExecStart= word from literal bytes (no placeholders).
pub fn exec_word(word: &[u8]) -> String {
    quote(word, Passes::Exec)
}

/// One `Environment=` assignment, `KEY=value` quoted as a single word.
pub fn environment_assignment(assignment: &[u8]) -> String {
    quote(assignment, Passes::Environment)
}

/// Escape a literal for a value that only goes through specifier expansion
/// (Description=, WorkingDirectory=, ListenStream= paths...).
pub fn specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// The body of a quoted word, without the surrounding quotes, so literals and
/// specifiers can be joined inside one pair of quotes.
pub fn exec_word_body(word: &[u8]) -> String {
    body(word, Passes::Exec)
}

pub fn environment_body(text: &[u8]) -> String {
    body(text, Passes::Environment)
}

fn quote(word: &[u8], passes: Passes) -> String {
    format!("\"{}\"", body(word, passes))
}

fn body(word: &[u8], passes: Passes) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    for chunk in word.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '%' => out.push_str("%%"),
                '$' if passes == Passes::Exec => out.push_str("$$"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                // Printable: as is (unicode included).
                c if !c.is_control() => out.push(c),
                // Control characters: \xNN for ASCII, \uXXXX beyond.
                c if u32::from(c) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Decode an `ExecStart=` value into argv the way systemd does (the three
/// passes above, with no specifiers other than `%%` and no variables other than
/// `$$`). Used to prove the encoder round-trips; it is not used for rendering.
pub fn decode_exec_line(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let words = split_words(line)?;
    words
        .into_iter()
        .map(|w| {
            let w = unescape_specifiers(&w)?;
            unescape_dollars(&w)
        })
        .collect()
}

/// Decode one `Environment=` value the way systemd does.
pub fn decode_environment(line: &str) -> Result<Vec<Vec<u8>>, String> {
    split_words(line)?
        .into_iter()
        .map(|w| unescape_specifiers(&w))
        .collect()
}

/// extract_first_word with EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE, repeated.
fn split_words(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if i >= bytes.len() {
            return Ok(words);
        }
        let mut word = Vec::new();
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            match (quote, b) {
                (None, b' ' | b'\t' | b'\n' | b'\r') => break,
                (None, b'"' | b'\'') => {
                    quote = Some(b);
                    i += 1;
                }
                (Some(q), b) if b == q => {
                    quote = None;
                    i += 1;
                }
                (_, b'\\') => {
                    let (decoded, used) = cunescape_one(&bytes[i + 1..])?;
                    word.extend_from_slice(&decoded);
                    i += 1 + used;
                }
                (_, b) => {
                    word.push(b);
                    i += 1;
                }
            }
        }
        if quote.is_some() {
            return Err("unbalanced quotes".into());
        }
        words.push(word);
    }
}

/// One C escape after a backslash: returns the bytes and how many input bytes
/// it used.
fn cunescape_one(rest: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let hex = |s: &[u8]| -> Result<u32, String> {
        let text = std::str::from_utf8(s).map_err(|_| "bad escape".to_owned())?;
        u32::from_str_radix(text, 16).map_err(|_| format!("bad hex escape {text:?}"))
    };
    let Some(&first) = rest.first() else {
        return Err("trailing backslash".into());
    };
    let simple = |b: u8| Ok((vec![b], 1));
    match first {
        b'a' => simple(7),
        b'b' => simple(8),
        b'f' => simple(12),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(11),
        b'\\' | b'"' | b'\'' | b' ' => simple(first),
        b's' => simple(b' '),
        b'x' => {
            let digits = rest.get(1..3).ok_or("short \\x escape")?;
            let v = hex(digits)?;
            if v == 0 {
                return Err("\\x00 is NUL".into());
            }
            Ok((vec![u8::try_from(v).expect("two hex digits")], 3))
        }
        b'u' | b'U' => {
            let n = if first == b'u' { 4 } else { 8 };
            let digits = rest.get(1..=n).ok_or("short unicode escape")?;
            let c = char::from_u32(hex(digits)?).ok_or("invalid code point")?;
            Ok((c.to_string().into_bytes(), 1 + n))
        }
        b'0'..=b'7' => {
            let digits = rest.get(0..3).ok_or("short octal escape")?;
            let text = std::str::from_utf8(digits).map_err(|_| "bad octal")?;
            let v =
                u32::from_str_radix(text, 8).map_err(|_| format!("bad octal escape {text:?}"))?;
            let v = u8::try_from(v).map_err(|_| "octal escape out of range")?;
            Ok((vec![v], 3))
        }
        other => Err(format!("unknown escape \\{}", char::from(other))),
    }
}

fn unescape_specifiers(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if word[i] == b'%' {
            match word.get(i + 1) {
                Some(b'%') => {
                    out.push(b'%');
                    i += 2;
                }
                Some(&other) => {
                    return Err(format!("specifier %{} in a literal", char::from(other)))
                }
                None => return Err("lone % at end of word".into()),
            }
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn unescape_dollars(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if word[i] == b'$' {
            if word.get(i + 1) == Some(&b'$') {
                out.push(b'$');
                i += 2;
            } else {
                return Err("unescaped $ would expand a variable".into());
            }
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(argv: &[&[u8]]) -> String {
        argv.iter()
            .map(|w| exec_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn hostile_words() {
        assert_eq!(exec_word(b"a b"), r#""a b""#);
        assert_eq!(exec_word(b"100%"), r#""100%%""#);
        assert_eq!(exec_word(b"${X}"), r#""$${X}""#);
        assert_eq!(exec_word(b"\"\\"), r#""\"\\""#);
        assert_eq!(exec_word(b"\t\n"), r#""\x09\x0a""#);
        assert_eq!(exec_word(b";"), r#"";""#);
        assert_eq!(exec_word(b""), r#""""#);
        assert_eq!(exec_word("ünï".as_bytes()), "\"ünï\"");
        assert_eq!(exec_word(b"\xff"), r#""\xff""#);
        assert_eq!(environment_assignment(b"A=$HOME 5%"), r#""A=$HOME 5%%""#);
    }

    #[test]
    fn decoder_follows_systemd() {
        assert_eq!(
            decode_exec_line(r#"/bin/x 'a b' "c\x41" d\ e"#).unwrap(),
            vec![
                b"/bin/x".to_vec(),
                b"a b".to_vec(),
                b"cA".to_vec(),
                b"d e".to_vec()
            ]
        );
        assert!(
            decode_exec_line(r#""$HOME""#).is_err(),
            "an unescaped $ is not literal"
        );
        assert!(
            decode_exec_line(r#""%t""#).is_err(),
            "an unescaped % is a specifier"
        );
    }

    proptest! {
        #[test]
        fn exec_round_trips(argv in proptest::collection::vec(
            proptest::collection::vec(1u8..=255, 0..24), 1..6)) {
            let words: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(decode_exec_line(&line(&words)).unwrap(), argv);
        }

        #[test]
        fn environment_round_trips(value in proptest::collection::vec(1u8..=255, 0..32)) {
            let mut assignment = b"K=".to_vec();
            assignment.extend_from_slice(&value);
            let decoded = decode_environment(&environment_assignment(&assignment)).unwrap();
            prop_assert_eq!(decoded, vec![assignment]);
        }
    }
}
