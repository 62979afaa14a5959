//! Command history from shell integration.
//!
//! Keystrokes are not commands: a line may be edited with backspace and arrows,
//! recalled from history or completed with tab. So bash is started with an rc file
//! that, through `PS0` (printed after a line is accepted, before it runs) and
//! `PROMPT_COMMAND` (after it finished), writes private OSC sequences carrying the
//! command *as bash recorded it* and its exit status:
//!
//! ```text
//! ESC ] 6973 ; <nonce> ; C ; <base64 command> BEL     command starts
//! ESC ] 6973 ; <nonce> ; D ; <exit status> BEL        command finished
//! ```
//!
//! [`OscParser`] removes these from the output stream (the user never sees them),
//! even when a sequence is split across reads. The nonce is per session, so text that
//! merely contains such a sequence (a `cat` of a file) is not taken for a command.
//! Limits: a shell other than bash, `exec`ing another program, or a user who unsets
//! `PROMPT_COMMAND`/`PS0` records nothing; a user can forge entries in their own
//! session by printing the nonce they can read. History is a convenience and an
//! aid to memory, not an audit log.

use base64::Engine;

/// The private OSC number.
const MARKER: &[u8] = b"\x1b]6973;";
/// Longest sequence kept while waiting for its terminator.
const MAX_SEQUENCE: usize = 64 * 1024;

/// The bash rc file: the user's own `~/.bashrc`, then the hooks.
pub const BASH_RC: &str = r#"# Arcana shell integration, written by terminal-host.
if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
__arcana_nonce="$ARCANA_OSC_NONCE"
unset ARCANA_OSC_NONCE
HISTCONTROL=
__arcana_preexec() {
  local line
  line="$(HISTTIMEFORMAT= builtin history 1)"
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line#*[[:space:]]}"
  line="${line#"${line%%[![:space:]]*}"}"
  builtin printf '\033]6973;%s;C;%s\007' "$__arcana_nonce" "$(builtin printf '%s' "$line" | base64 -w0)"
}
__arcana_precmd() {
  local status=$?
  builtin printf '\033]6973;%s;D;%s\007' "$__arcana_nonce" "$status"
}
PS0='$(__arcana_preexec)'
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
    /// Bytes to show the user.
    Output(Vec<u8>),
    /// A shell event (removed from the output).
    Event(ShellEvent),
}

/// Streaming parser for the integration sequences.
pub struct OscParser {
    nonce: String,
    carry: Vec<u8>,
}

impl OscParser {
    /// A parser accepting sequences with `nonce`.
    pub fn new(nonce: impl Into<String>) -> OscParser {
        OscParser {
            nonce: nonce.into(),
            carry: Vec::new(),
        }
    }

    /// Parses the next chunk of output, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Piece> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut pieces = Vec::new();
        let mut plain_start = 0;
        let mut i = 0;
        while i < data.len() {
            if data[i] != 0x1b {
                i += 1;
                continue;
            }
            let rest = &data[i..];
            if rest.len() < MARKER.len() {
                if MARKER.starts_with(rest) {
                    // Maybe the start of a sequence: wait for more.
                    push_output(&mut pieces, &data[plain_start..i]);
                    self.carry = rest.to_vec();
                    return pieces;
                }
                i += 1;
                continue;
            }
            if !rest.starts_with(MARKER) {
                i += 1;
                continue;
            }
            let body_start = i + MARKER.len();
            match data[body_start..].iter().position(|&b| b == 0x07) {
                Some(len) => {
                    let body = &data[body_start..body_start + len];
                    let end = body_start + len + 1;
                    if let Some(event) = self.parse_body(body) {
                        push_output(&mut pieces, &data[plain_start..i]);
                        pieces.push(Piece::Event(event));
                        plain_start = end;
                    }
                    i = end;
                }
                None if data.len() - i <= MAX_SEQUENCE => {
                    push_output(&mut pieces, &data[plain_start..i]);
                    self.carry = data[i..].to_vec();
                    return pieces;
                }
                None => i += 1, // unterminated and too long: not ours
            }
        }
        push_output(&mut pieces, &data[plain_start..]);
        pieces
    }

    fn parse_body(&self, body: &[u8]) -> Option<ShellEvent> {
        let text = std::str::from_utf8(body).ok()?;
        let mut parts = text.splitn(3, ';');
        if parts.next()? != self.nonce {
            return None;
        }
        match (parts.next()?, parts.next().unwrap_or("")) {
            ("C", b64) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()?;
                Some(ShellEvent::CommandStarted(
                    String::from_utf8_lossy(&bytes).trim_end().to_string(),
                ))
            }
            ("D", status) => status.trim().parse().ok().map(ShellEvent::CommandFinished),
            _ => None,
        }
    }
}

fn push_output(pieces: &mut Vec<Piece>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Piece::Output(prev)) = pieces.last_mut() {
        prev.extend_from_slice(bytes);
    } else {
        pieces.push(Piece::Output(bytes.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(nonce: &str, cmd: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cmd);
        format!("\x1b]6973;{nonce};C;{b64}\x07").into_bytes()
    }

    fn collect(parser: &mut OscParser, chunks: &[&[u8]]) -> (Vec<u8>, Vec<ShellEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        for c in chunks {
            for p in parser.feed(c) {
                match p {
                    Piece::Output(b) => out.extend(b),
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
}
