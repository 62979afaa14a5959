//! A live terminal session: one shell in one PTY, owned by one task (the actor).
//!
//! ```text
//!  PTY ──reader thread──▶ output channel (bounded) ──▶ actor ──▶ client channel (bounded) ──▶ WebSocket
//!  PTY ◀──writer thread── input channel (bounded) ◀────────────────────────────────────────── WebSocket
//! ```
//!
//! Flow control: the actor reads the next output chunk only after the attached client
//! accepted the previous one. A slow client therefore fills its channel, the actor
//! stops reading, the output channel fills, the reader thread blocks, and the kernel
//! stops the shell on its next write: nothing buffers without bound, and nothing is
//! dropped or reordered for an attached client. While detached, output goes only to
//! the bounded scrollback, which is replayed to the next client that attaches.
//!
//! The actor also extracts command history (see [`crate::shell_integration`]),
//! records the session, and enforces the idle, lifetime and detach limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::Signal;
use portable_pty::MasterPty;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pty::{self, ShellSpec};
use crate::recording::Recorder;
use crate::shell_integration::{OscParser, Piece, ShellEvent};
use crate::store::{Store, TerminalCommand};

/// Read size from the PTY.
const READ_CHUNK: usize = 16 * 1024;
/// Output chunks queued between the reader thread and the actor (high watermark).
const OUTPUT_QUEUE: usize = 16;
/// Messages queued for one WebSocket client.
pub const CLIENT_QUEUE: usize = 16;

/// A message for the attached client.
#[derive(Debug, Clone)]
pub enum ServerMsg {
    /// Terminal output, in order.
    Output(Bytes),
    /// The session ended; the socket closes after this.
    Exit { code: Option<i64>, reason: String },
    /// Another connection took the session over.
    Detached,
}

/// What a new attachment gets back.
pub struct Attached {
    pub attach_id: u64,
    pub messages: mpsc::Receiver<ServerMsg>,
    pub input: mpsc::Sender<Vec<u8>>,
    pub cols: u16,
    pub rows: u16,
}

enum Command {
    Attach {
        reply: oneshot::Sender<Attached>,
    },
    Detach {
        attach_id: u64,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    Close {
        reason: &'static str,
        done: Option<oneshot::Sender<()>>,
    },
}

/// A handle to a live session's actor. Cheap to clone.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: String,
    pub user_id: String,
    commands: mpsc::Sender<Command>,
    activity: Arc<Activity>,
}

/// Milliseconds since the session started at which input or output last happened.
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Marks activity now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

impl SessionHandle {
    /// Attaches a client: it receives the scrollback first, then live output.
    pub async fn attach(&self) -> Option<Attached> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Attach { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Detaches a client (the shell keeps running for the grace period).
    pub async fn detach(&self, attach_id: u64) {
        let _ = self.commands.send(Command::Detach { attach_id }).await;
    }

    /// Resizes the PTY.
    pub async fn resize(&self, cols: u16, rows: u16) {
        let _ = self.commands.send(Command::Resize { cols, rows }).await;
    }

    /// Closes the session and waits until it is recorded as closed.
    pub async fn close(&self, reason: &'static str) {
        let (done, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Close {
                reason,
                done: Some(done),
            })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Marks input activity (for the idle timeout).
    pub fn touch(&self) {
        self.activity.touch();
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the user has {0} live sessions already")]
    TooMany(usize),
    #[error("the session id is in use")]
    Exists,
    #[error("cannot start the shell: {0}")]
    Spawn(anyhow::Error),
    #[error("database error: {0}")]
    Database(#[from] arcana_core::db::DbError),
}

/// All live sessions of this process.
pub struct Registry {
    sessions: Mutex<HashMap<String, SessionHandle>>,
    next_attach: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            sessions: Mutex::new(HashMap::new()),
            next_attach: AtomicU64::new(1),
        }
    }
}

/// What the actor needs from the server.
#[derive(Clone)]
pub struct SessionEnv {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub rc_file: Option<std::path::PathBuf>,
}

impl Registry {
    /// A live session by id.
    pub fn get(&self, id: &str) -> Option<SessionHandle> {
        self.sessions
            .lock()
            .expect("registry lock")
            .get(id)
            .cloned()
    }

    /// Live sessions of a user.
    pub fn count_for(&self, user_id: &str) -> usize {
        self.sessions
            .lock()
            .expect("registry lock")
            .values()
            .filter(|s| s.user_id == user_id)
            .count()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().expect("registry lock").len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, id: &str) {
        self.sessions.lock().expect("registry lock").remove(id);
    }

    /// Closes every session (graceful shutdown).
    pub async fn close_all(&self, reason: &'static str) {
        let all: Vec<SessionHandle> = self
            .sessions
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        futures::future::join_all(all.iter().map(|s| s.close(reason))).await;
    }

    /// Starts a new session: checks the per-user limit, records it, spawns the shell.
    pub async fn start(
        &self,
        env: &SessionEnv,
        id: &str,
        user_id: &str,
        cols: u16,
        rows: u16,
    ) -> Result<SessionHandle, StartError> {
        let live = self.count_for(user_id);
        if live >= env.config.max_sessions_per_user {
            return Err(StartError::TooMany(live));
        }
        let now = arcana_core::time::now_string();
        let shell_name = env.config.shell.display().to_string();
        env.store
            .insert_session(id, user_id, &shell_name, cols, rows, &now)
            .await
            .map_err(|e| match e {
                arcana_core::db::DbError::Unique(_) => StartError::Exists,
                other => StartError::Database(other),
            })?;
        let nonce = random_hex(16);
        let spawned = pty::spawn(&ShellSpec {
            shell: &env.config.shell,
            rc_file: env.rc_file.as_deref(),
            workdir: env.config.workdir.as_deref(),
            cols,
            rows,
            session_id: id,
            osc_nonce: &nonce,
        });
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                env.metrics.spawn_failures.fetch_add(1, Ordering::Relaxed);
                let _ = env
                    .store
                    .close_session(id, &arcana_core::time::now_string(), "spawn_failed", None)
                    .await;
                return Err(StartError::Spawn(e));
            }
        };
        env.metrics.sessions_started.fetch_add(1, Ordering::Relaxed);

        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(OUTPUT_QUEUE);
        let mut reader = spawned.reader;
        std::thread::Builder::new()
            .name("pty-reader".into())
            .spawn(move || {
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break, // EOF or EIO: the shell side is gone
                        Ok(n) => {
                            if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| StartError::Spawn(e.into()))?;

        let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(64);
        let mut writer = spawned.writer;
        std::thread::Builder::new()
            .name("pty-writer".into())
            .spawn(move || {
                while let Some(bytes) = in_rx.blocking_recv() {
                    if writer
                        .write_all(&bytes)
                        .and_then(|_| writer.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| StartError::Spawn(e.into()))?;

        let (exit_tx, exit_rx) = oneshot::channel();
        let mut child = spawned.child;
        std::thread::Builder::new()
            .name("pty-waiter".into())
            .spawn(move || {
                let code = child.wait().ok().map(|s| s.exit_code() as i64);
                let _ = exit_tx.send(code);
            })
            .map_err(|e| StartError::Spawn(e.into()))?;

        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let activity = Arc::new(Activity::new());
        let handle = SessionHandle {
            id: id.to_string(),
            user_id: user_id.to_string(),
            commands: cmd_tx,
            activity: activity.clone(),
        };
        self.sessions
            .lock()
            .expect("registry lock")
            .insert(id.to_string(), handle.clone());

        let recorder = env.config.record.then(|| {
            Recorder::new(
                cols,
                rows,
                time::OffsetDateTime::now_utc().unix_timestamp(),
                &shell_name,
                env.config.recording_max_bytes,
            )
        });
        let actor = Actor {
            id: id.to_string(),
            env: env.clone(),
            master: spawned.master,
            pgid: spawned.pid,
            input: in_tx,
            activity,
            started: Instant::now(),
            cols,
            rows,
            scrollback: VecDeque::new(),
            parser: OscParser::new(nonce),
            current: None,
            next_seq: 0,
            recorder,
            recording_seq: 0,
            client: None,
            detached_at: Some(Instant::now()),
            pending: None,
            close_reason: None,
            kill_at: None,
            closed_waiters: Vec::new(),
            db_writes: spawn_db_writer(env.store.clone(), id.to_string()),
        };
        tokio::spawn(actor.run(cmd_rx, out_rx, exit_rx));
        tracing::info!(session_id = %id, user_id = %user_id, pid = spawned.pid, "terminal session started");
        Ok(handle)
    }

    /// Allocates an attachment id.
    fn next_attach_id(&self) -> u64 {
        self.next_attach.fetch_add(1, Ordering::Relaxed)
    }
}

/// Ordered database writes of one session, off the actor's path.
enum DbWrite {
    History(TerminalCommand),
    Recording(i64, String),
    Size(u16, u16),
    Close(String, Option<i64>),
}

fn spawn_db_writer(
    store: Store,
    id: String,
) -> (mpsc::UnboundedSender<DbWrite>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(write) = rx.recv().await {
            let result = match &write {
                DbWrite::History(row) => store.insert_history(row).await,
                DbWrite::Recording(seq, data) => store.append_recording(&id, *seq, data).await,
                DbWrite::Size(c, r) => store.set_size(&id, *c, *r).await,
                DbWrite::Close(reason, code) => {
                    store
                        .close_session(&id, &arcana_core::time::now_string(), reason, *code)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(session_id = %id, error = %e, "terminal database write failed");
            }
        }
    });
    (tx, task)
}

/// A command being captured for the history.
struct CurrentCommand {
    seq: i64,
    command: String,
    started_at: String,
    output: Vec<u8>,
    truncated: bool,
}

struct Client {
    attach_id: u64,
    tx: mpsc::Sender<ServerMsg>,
}

struct Actor {
    id: String,
    env: SessionEnv,
    master: Box<dyn MasterPty + Send>,
    pgid: u32,
    input: mpsc::Sender<Vec<u8>>,
    activity: Arc<Activity>,
    started: Instant,
    cols: u16,
    rows: u16,
    scrollback: VecDeque<u8>,
    parser: OscParser,
    current: Option<CurrentCommand>,
    next_seq: i64,
    recorder: Option<Recorder>,
    recording_seq: i64,
    client: Option<Client>,
    detached_at: Option<Instant>,
    /// Output accepted from the PTY but not yet taken by the client's channel.
    pending: Option<Bytes>,
    close_reason: Option<&'static str>,
    kill_at: Option<tokio::time::Instant>,
    closed_waiters: Vec<oneshot::Sender<()>>,
    db_writes: (mpsc::UnboundedSender<DbWrite>, tokio::task::JoinHandle<()>),
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut output: mpsc::Receiver<Vec<u8>>,
        mut exit: oneshot::Receiver<Option<i64>>,
    ) {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let mut exit_code: Option<Option<i64>> = None;
        let mut output_done = false;
        let mut exited_at: Option<tokio::time::Instant> = None;
        loop {
            let client_tx = self.client.as_ref().map(|c| c.tx.clone());
            let kill_at = self.kill_at;
            tokio::select! {
                biased;
                Some(cmd) = commands.recv() => self.on_command(cmd),
                permit = async { client_tx.as_ref().expect("guarded").reserve().await }, if self.pending.is_some() && client_tx.is_some() => {
                    match permit {
                        Ok(permit) => permit.send(ServerMsg::Output(self.pending.take().expect("guarded"))),
                        Err(_) => self.detach_current(), // the socket task is gone
                    }
                }
                chunk = output.recv(), if self.pending.is_none() && !output_done => match chunk {
                    Some(chunk) => self.on_output(&chunk),
                    None => output_done = true,
                },
                code = &mut exit, if exit_code.is_none() => {
                    exit_code = Some(code.unwrap_or(None));
                    exited_at = Some(tokio::time::Instant::now());
                }
                () = async { tokio::time::sleep_until(kill_at.expect("guarded")).await }, if kill_at.is_some() && exit_code.is_none() => {
                    pty::signal_group(self.pgid, Signal::SIGKILL);
                    self.kill_at = None;
                }
                _ = ticker.tick() => self.on_tick(),
            }
            if let Some(code) = exit_code {
                // Deliver what the shell wrote before it exited, but do not wait forever
                // for a stray process that escaped the group and holds the PTY open.
                let waited = exited_at.map(|t| t.elapsed()).unwrap_or_default();
                let flushed = output_done && self.pending.is_none();
                if flushed || waited > Duration::from_secs(2) {
                    self.finish(code).await;
                    return;
                }
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach { reply } => {
                let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
                if let Some(old) = self.client.take() {
                    let _ = old.tx.try_send(ServerMsg::Detached);
                }
                // Everything pending is already in the scrollback, which is replayed first.
                self.pending = None;
                if !self.scrollback.is_empty() {
                    let replay: Vec<u8> = self.scrollback.iter().copied().collect();
                    let _ = tx.try_send(ServerMsg::Output(Bytes::from(replay)));
                }
                let attach_id = self.env.registry.next_attach_id();
                self.client = Some(Client { attach_id, tx });
                self.detached_at = None;
                let _ = reply.send(Attached {
                    attach_id,
                    messages: rx,
                    input: self.input.clone(),
                    cols: self.cols,
                    rows: self.rows,
                });
            }
            Command::Detach { attach_id } => {
                if self
                    .client
                    .as_ref()
                    .is_some_and(|c| c.attach_id == attach_id)
                {
                    self.detach_current();
                }
            }
            Command::Resize { cols, rows } => {
                if (cols, rows) != (self.cols, self.rows)
                    && pty::resize(self.master.as_ref(), cols, rows).is_ok()
                {
                    self.cols = cols;
                    self.rows = rows;
                    if let Some(r) = &mut self.recorder {
                        r.resize(cols, rows);
                    }
                    let _ = self.db_writes.0.send(DbWrite::Size(cols, rows));
                }
            }
            Command::Close { reason, done } => {
                if let Some(done) = done {
                    self.closed_waiters.push(done);
                }
                self.begin_close(reason);
            }
        }
    }

    fn detach_current(&mut self) {
        self.client = None;
        self.pending = None;
        self.detached_at = Some(Instant::now());
    }

    /// SIGHUP now, SIGKILL after the grace time if the shell is still there.
    fn begin_close(&mut self, reason: &'static str) {
        if self.close_reason.is_some() {
            return;
        }
        self.close_reason = Some(reason);
        tracing::info!(session_id = %self.id, reason, "closing terminal session");
        pty::signal_group(self.pgid, Signal::SIGHUP);
        // An interactive bash ignores SIGTERM but not SIGHUP; a job that ignores SIGHUP
        // meets SIGKILL.
        self.kill_at = Some(tokio::time::Instant::now() + self.env.config.kill_grace());
    }

    fn on_output(&mut self, chunk: &[u8]) {
        self.activity.touch();
        self.env
            .metrics
            .bytes_out
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let mut visible: Vec<u8> = Vec::with_capacity(chunk.len());
        for piece in self.parser.feed(chunk) {
            match piece {
                Piece::Output(bytes) => {
                    if let Some(cur) = &mut self.current {
                        let room = self
                            .env
                            .config
                            .history_output_bytes
                            .saturating_sub(cur.output.len());
                        if bytes.len() > room {
                            cur.truncated = true;
                        }
                        cur.output
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                    visible.extend_from_slice(&bytes);
                }
                Piece::Event(event) => self.on_shell_event(event),
            }
        }
        if visible.is_empty() {
            return;
        }
        if let Some(r) = &mut self.recorder {
            r.output(&visible);
        }
        let cap = self.env.config.scrollback_bytes;
        self.scrollback.extend(visible.iter().copied());
        if self.scrollback.len() > cap {
            let excess = self.scrollback.len() - cap;
            self.scrollback.drain(..excess);
        }
        if self.client.is_some() {
            self.pending = Some(Bytes::from(visible));
        }
    }

    fn on_shell_event(&mut self, event: ShellEvent) {
        match event {
            ShellEvent::CommandStarted(command) => {
                self.finish_command(None);
                let seq = self.next_seq;
                self.next_seq += 1;
                self.current = Some(CurrentCommand {
                    seq,
                    command,
                    started_at: arcana_core::time::now_string(),
                    output: Vec::new(),
                    truncated: false,
                });
            }
            ShellEvent::CommandFinished(code) => self.finish_command(Some(code)),
        }
    }

    fn finish_command(&mut self, exit_code: Option<i64>) {
        let Some(cur) = self.current.take() else {
            return;
        };
        if cur.command.is_empty() {
            return;
        }
        self.env
            .metrics
            .commands_run
            .fetch_add(1, Ordering::Relaxed);
        let row = TerminalCommand {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: self.id.clone(),
            seq: cur.seq,
            command: cur.command,
            exit_code,
            output: strip_escapes(&cur.output),
            output_truncated: cur.truncated,
            timestamp: cur.started_at,
            finished_at: Some(arcana_core::time::now_string()),
        };
        let _ = self.db_writes.0.send(DbWrite::History(row));
    }

    fn on_tick(&mut self) {
        let config = &self.env.config;
        if self.close_reason.is_none() {
            if self.started.elapsed() > config.max_lifetime() {
                self.begin_close("lifetime");
            } else if self.activity.idle_for() > config.idle_timeout() {
                self.begin_close("idle_timeout");
            } else if self
                .detached_at
                .is_some_and(|t| t.elapsed() > config.detach_grace())
            {
                self.begin_close("detached_timeout");
            }
        }
        self.flush_recording(false);
    }

    fn flush_recording(&mut self, force: bool) {
        let Some(r) = &mut self.recorder else { return };
        if !force && r.pending_len() == 0 {
            return;
        }
        if let Some(chunk) = r.take_chunk() {
            let seq = self.recording_seq;
            self.recording_seq += 1;
            let _ = self.db_writes.0.send(DbWrite::Recording(seq, chunk));
        }
    }

    async fn finish(mut self, exit_code: Option<i64>) {
        self.finish_command(None);
        self.flush_recording(true);
        let reason = self.close_reason.unwrap_or("exited");
        // Nothing may outlive the session: stop the group even if only the shell exited.
        pty::signal_group(self.pgid, Signal::SIGKILL);
        let (writes, writer_task) = self.db_writes;
        let _ = writes.send(DbWrite::Close(reason.to_string(), exit_code));
        drop(writes);
        let _ = writer_task.await;
        if let Some(client) = self.client.take() {
            let _ = client
                .tx
                .send(ServerMsg::Exit {
                    code: exit_code,
                    reason: reason.to_string(),
                })
                .await;
        }
        self.env.registry.remove(&self.id);
        self.env
            .metrics
            .sessions_ended
            .fetch_add(1, Ordering::Relaxed);
        for waiter in self.closed_waiters {
            let _ = waiter.send(());
        }
        tracing::info!(session_id = %self.id, reason, ?exit_code, "terminal session ended");
    }
}

/// Removes terminal escape sequences (CSI, OSC, two-byte) from captured output, so
/// that stored history is readable text.
pub fn strip_escapes(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'[') => {
                i += 2;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            0x1b if bytes.get(i + 1) == Some(&b']') => {
                i += 2;
                while i < bytes.len()
                    && bytes[i] != 0x07
                    && !(bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if bytes.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            0x1b => i += 2,
            b'\r' => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Random lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_stripped_from_history_output() {
        assert_eq!(
            strip_escapes(b"\x1b[1;31mred\x1b[0m\r\n\x1b]0;t\x07ok"),
            "red\nok"
        );
    }
}
