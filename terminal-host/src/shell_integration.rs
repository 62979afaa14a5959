//! Command history from shell integration.
//!
//! Keystrokes are not commands: a line may be edited with backspace and arrows,
//! recalled from history or completed with tab. So bash is started with an rc file
//! whose hooks write private OSC sequences carrying the command *as bash recorded it*
//! and its exit status:
//!
//! ```text
//! ESC ] 6973 ; <nonce> ; C ; <`history 1` of the line> BEL     command starts
//! ESC ] 6973 ; <nonce> ; D ; <exit status> BEL                 command finished
//! ```
//!
//! The hooks cost no process: a `DEBUG` trap (before the first simple command of each
//! line) and `PROMPT_COMMAND` run builtins only. `history 1` prints the line exactly as
//! bash stored it (after editing, recall or completion, multi-line commands included)
//! straight into the sequence; a line that itself holds a BEL character is recorded up
//! to it.
//!
//! [`OscParser`] removes these from the output stream (the user never sees them),
//! even when a sequence is split across reads. Output without an ESC byte, almost
//! all of it, passes through untouched and uncopied (`memchr` finds none). The nonce
//! is per session, so text that merely contains such a sequence (a `cat` of a file)
//! is not taken for a command. Limits: a shell other than bash, `exec`ing another
//! program, or a user who replaces the `DEBUG` trap or `PROMPT_COMMAND` records
//! nothing; a user can forge entries in their own session by printing the nonce they
//! can read. History is a convenience and an aid to memory, not an audit log.

use bytes::{Bytes, BytesMut};

/// The private OSC number.
const MARKER: &[u8] = b"\x1b]6973;";
/// Longest sequence kept while waiting for its terminator.
const MAX_SEQUENCE: usize = 64 * 1024;

/// The bash rc file: the user's own `~/.bashrc`, then the hooks. The command line is
/// printed by `history 1` straight into the sequence (the parser drops its number), so
/// nothing is captured with `$(...)`, which would fork.
pub const BASH_RC: &str = r#"# Arcana shell integration, written by terminal-host. Builtins only: no process per command.
if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
__arcana_nonce="$ARCANA_OSC_NONCE"
unset ARCANA_OSC_NONCE
HISTCONTROL=
__arcana_armed=
__arcana_debug() {
  [ -n "$__arcana_armed" ] || return 0
  [ "$BASH_COMMAND" = "__arcana_precmd" ] && return 0
  __arcana_armed=
  builtin printf '\033]6973;%s;C;' "$__arcana_nonce"
  HISTTIMEFORMAT= builtin history 1
  builtin printf '\007'
}
__arcana_precmd() {
  local status=$?
  builtin printf '\033]6973;%s;D;%s\007' "$__arcana_nonce" "$status"
  __arcana_armed=1
}
trap '__arcana_debug' DEBUG
PROMPT_COMMAND='__arcana_precmd'
"#;

/// What the shell reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// A command line is about to run.
    CommandStarted(String),
    /// The last command finished with this status.
    CommandFinished(i64),
}

/// A piece of PTY output after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes to show the user (a slice of the input when possible).
    Output(Bytes),
    /// A shell event (removed from the output).
    Event(ShellEvent),
}

/// Streaming parser for the integration sequences.
pub struct OscParser {
    nonce: String,
    carry: BytesMut,
}

impl OscParser {
    /// A parser accepting sequences with `nonce`.
    pub fn new(nonce: impl Into<String>) -> OscParser {
        OscParser {
            nonce: nonce.into(),
            carry: BytesMut::new(),
        }
    }

    /// Parses the next chunk of output, in order.
    pub fn feed(&mut self, chunk: Bytes) -> Vec<Piece> {
        let data = if self.carry.is_empty() {
            // The common case: nothing held back and no ESC at all.
            if memchr::memchr(0x1b, &chunk).is_none() {
                return if chunk.is_empty() {
                    Vec::new()
                } else {
                    vec![Piece::Output(chunk)]
                };
            }
            chunk
        } else {
            self.carry.extend_from_slice(&chunk);
            self.carry.split().freeze()
        };
        let mut pieces = Vec::new();
        let mut plain_start = 0;
        let mut from = 0;
        while let Some(offset) = memchr::memchr(0x1b, &data[from..]) {
            let i = from + offset;
            let rest = &data[i..];
            if rest.len() < MARKER.len() {
                if MARKER.starts_with(rest) {
                    // Maybe the start of a sequence: wait for more.
                    push_output(&mut pieces, data.slice(plain_start..i));
                    self.carry.extend_from_slice(rest);
                    return pieces;
                }
                from = i + 1;
                continue;
            }
            if !rest.starts_with(MARKER) {
                from = i + 1;
                continue;
            }
            let body_start = i + MARKER.len();
            match memchr::memchr(0x07, &data[body_start..]) {
                Some(len) => {
                    let end = body_start + len + 1;
                    if let Some(event) = self.parse_body(&data[body_start..body_start + len]) {
                        push_output(&mut pieces, data.slice(plain_start..i));
                        pieces.push(Piece::Event(event));
                        plain_start = end;
                    }
                    from = end;
                }
                None if data.len() - i <= MAX_SEQUENCE => {
                    push_output(&mut pieces, data.slice(plain_start..i));
                    self.carry.extend_from_slice(&data[i..]);
                    return pieces;
                }
                None => from = i + 1, // unterminated and too long: not ours
            }
        }
        push_output(&mut pieces, data.slice(plain_start..));
        pieces
    }

    fn parse_body(&self, body: &[u8]) -> Option<ShellEvent> {
        let text = std::str::from_utf8(body).ok()?;
        let mut parts = text.splitn(3, ';');
        if parts.next()? != self.nonce {
            return None;
        }
        match (parts.next()?, parts.next().unwrap_or("")) {
            ("C", entry) => Some(ShellEvent::CommandStarted(history_line(entry))),
            ("D", status) => status.trim().parse().ok().map(ShellEvent::CommandFinished),
            _ => None,
        }
    }
}

fn push_output(pieces: &mut Vec<Piece>, bytes: Bytes) {
    if !bytes.is_empty() {
        pieces.push(Piece::Output(bytes));
    }
}

/// Whether `line` starts like a `history` line: spaces, the number, `*` or a space, a space.
fn numbered(line: &str) -> bool {
    let rest = line.trim_start_matches(' ');
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = &rest.as_bytes()[digits..];
    digits > 0 && after.len() >= 2 && matches!(after[0], b'*' | b' ') && after[1] == b' '
}

/// The command of a `history 1` line: `  <number>[*]  <command>\n`. Keys typed ahead
/// while a command starts are echoed by the terminal between the hook's writes, so the
/// entry may begin with their echo (`^[[A\r\n`): it starts at the first numbered line.
pub fn history_line(entry: &str) -> String {
    let start = std::iter::once(0)
        .chain(entry.match_indices('\n').map(|(i, _)| i + 1))
        .find(|&i| numbered(&entry[i..]))
        .unwrap_or(0);
    let rest = entry[start..].trim_start();
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix('*').unwrap_or(rest);
    rest.trim_start_matches([' ', '\t']).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(nonce: &str, command: &str) -> Vec<u8> {
        format!("\x1b]6973;{nonce};C;  42  {command}\n\x07").into_bytes()
    }

    fn collect(parser: &mut OscParser, chunks: &[&[u8]]) -> (Vec<u8>, Vec<ShellEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        for c in chunks {
            for p in parser.feed(Bytes::copy_from_slice(c)) {
                match p {
                    Piece::Output(b) => out.extend_from_slice(&b),
                    Piece::Event(e) => events.push(e),
                }
            }
        }
        (out, events)
    }

    #[test]
    fn events_are_extracted_and_stripped() {
        let mut p = OscParser::new("n1");
        let mut data = b"$ ".to_vec();
        data.extend(start("n1", "echo hi"));
        data.extend(b"hi\r\n\x1b]6973;n1;D;0\x07$ ");
        let (out, events) = collect(&mut p, &[&data]);
        assert_eq!(out, b"$ hi\r\n$ ");
        assert_eq!(
            events,
            vec![
                ShellEvent::CommandStarted("echo hi".into()),
                ShellEvent::CommandFinished(0)
            ]
        );
    }

    #[test]
    fn sequences_split_across_chunks_at_every_position() {
        let mut data = b"a".to_vec();
        data.extend(start("n", "ls -la"));
        data.extend(b"b\x1b]6973;n;D;2\x07c");
        for split in 0..data.len() {
            let mut p = OscParser::new("n");
            let (out, events) = collect(&mut p, &[&data[..split], &data[split..]]);
            assert_eq!(out, b"abc", "split at {split}");
            assert_eq!(events.len(), 2, "split at {split}");
        }
    }

    #[test]
    fn wrong_nonce_and_other_escapes_pass_through() {
        let mut p = OscParser::new("right");
        let mut data = start("wrong", "rm -rf /");
        data.extend(b"\x1b[31mred\x1b[0m\x1b]0;title\x07");
        let (out, events) = collect(&mut p, &[&data]);
        assert!(events.is_empty());
        assert_eq!(out, data);
    }

    #[test]
    fn plain_output_is_passed_on_without_a_copy() {
        let mut p = OscParser::new("n");
        let chunk = Bytes::from_static(b"no escape here\r\n");
        let pieces = p.feed(chunk.clone());
        match &pieces[..] {
            [Piece::Output(b)] => assert_eq!(b.as_ptr(), chunk.as_ptr()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_lines_lose_their_number() {
        assert_eq!(history_line("  7  echo hi\n"), "echo hi");
        assert_eq!(history_line("12345* ls -la\n"), "ls -la");
        assert_eq!(
            history_line(" 3  for i in 1 2; do\n echo $i\ndone\n"),
            "for i in 1 2; do\n echo $i\ndone"
        );
        // Type-ahead echoed before the entry.
        assert_eq!(history_line("^[[A\r\n    1  echo abc\r\n"), "echo abc");
        assert_eq!(history_line("x\r\n"), "x");
    }
}
