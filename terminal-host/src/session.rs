//! A live terminal session: one shell in one PTY, owned by one task (the actor) that
//! also owns the attached client's WebSocket.
//!
//! ```text
//!  WebSocket ──keystrokes──▶ actor ──write──▶ PTY (non-blocking)
//!  WebSocket ◀──output───── actor ◀──read─── PTY
//! ```
//!
//! A keystroke crosses no channel and no thread: the task that reads it from the socket
//! writes it to the PTY, and the task that reads the echo writes it to the socket.
//!
//! Flow control: the actor reads the PTY only once the client's socket took everything
//! sent before. A slow client therefore stops the reads, the kernel's PTY buffer fills
//! and the shell blocks on its next write: nothing buffers without bound, and nothing
//! is dropped or reordered for an attached client. Keystrokes (Ctrl-C above all) are
//! still read meanwhile. While detached, output goes only to the bounded scrollback,
//! which is replayed to the next client that attaches.
//!
//! The actor also extracts command history (see [`crate::shell_integration`]),
//! records the session, and enforces the idle, lifetime and detach limits.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::{Sink, Stream};
use nix::sys::signal::Signal;
use serde::Deserialize;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pty::{self, Pty, ShellSpec};
use crate::recording::Recorder;
use crate::session_writes::{SessionWrites, Write};
use crate::shell_integration::{OscParser, Piece, ShellEvent};
use crate::shells::ShellPolicy;
use crate::store::{Store, TerminalCommand};

/// Messages queued for one client at most (control answers included); past it the
/// client is not reading and is dropped.
const MAX_OUTBOX: usize = 64;
/// Keystrokes waiting for the PTY at most; past it the socket is not read.
const MAX_INPUT_PENDING: usize = 64 * 1024;
/// Recorded output goes to the database in rows of about this size (or every tick):
/// bulk output never builds one huge row in memory.
const RECORDING_CHUNK: usize = 64 * 1024;
/// The server pings a quiet client this often, and drops one silent for longer.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(90);

/// A handle to a live session's actor. Cheap to clone.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: String,
    pub user_id: String,
    commands: mpsc::Sender<Command>,
}

enum Command {
    Attach {
        socket: Box<WebSocket>,
        reattached: bool,
    },
    Close {
        reason: &'static str,
        done: Option<oneshot::Sender<()>>,
    },
}

impl SessionHandle {
    /// Hands a client's socket to the session: it receives `hello`, the scrollback, then
    /// live output. The socket comes back when the session has just ended.
    pub async fn attach(&self, socket: WebSocket, reattached: bool) -> Result<(), WebSocket> {
        self.commands
            .send(Command::Attach {
                socket: Box::new(socket),
                reattached,
            })
            .await
            .map_err(|e| match e.0 {
                Command::Attach { socket, .. } => *socket,
                Command::Close { .. } => unreachable!("sent an attach"),
            })
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
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the user has {0} live sessions already")]
    TooMany(usize),
    #[error("the session id is in use")]
    Exists,
    #[error("cannot start the shell: {0}")]
    Spawn(std::io::Error),
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
    /// This host, recorded as each new session's owner.
    pub identity: Arc<crate::hosts::Identity>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub rc_file: Option<std::path::PathBuf>,
    pub policy: Arc<ShellPolicy>,
    pub writes: SessionWrites,
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

    /// Starts a new session: checks the per-user limit, spawns the shell, records it.
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
        let policy = &env.policy;
        let home = match &policy.home_root {
            Some(root) => {
                pty::prepare_home(root, user_id, &policy.user).map_err(StartError::Spawn)?
            }
            None => std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| "/".into()),
        };
        let nonce = random_hex(16);
        // The shell starts while the row is written: neither waits for the other.
        let spec = ShellSpec {
            shell: &env.config.shell,
            rc_file: env.rc_file.as_deref(),
            home: &home,
            cols,
            rows,
            session_id: id,
            osc_nonce: &nonce,
            user: &policy.user,
            limits: policy.limits,
            sandbox: policy.sandbox.as_ref(),
        };
        let spawned = pty::spawn(&spec);
        let insert = env
            .store
            .insert_session(id, user_id, &env.identity.id, &shell_name, cols, rows, &now)
            .await;
        let spawned = match (spawned, insert) {
            (Ok(s), Ok(())) => s,
            (Ok(s), Err(e)) => {
                pty::kill_session_off_runtime(s.pid).await;
                return Err(match e {
                    arcana_core::db::DbError::Unique(_) => StartError::Exists,
                    other => StartError::Database(other),
                });
            }
            (Err(e), inserted) => {
                env.metrics.spawn_failures.fetch_add(1, Ordering::Relaxed);
                if inserted.is_ok() {
                    let _ = env
                        .store
                        .close_session(id, &arcana_core::time::now_string(), "spawn_failed", None)
                        .await;
                }
                return Err(StartError::Spawn(e));
            }
        };
        env.metrics.sessions_started.fetch_add(1, Ordering::Relaxed);

        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let handle = SessionHandle {
            id: id.to_string(),
            user_id: user_id.to_string(),
            commands: cmd_tx,
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
        let state = State {
            id: Arc::from(id),
            env: env.clone(),
            pgid: spawned.pid,
            started: Instant::now(),
            last_activity: Instant::now(),
            cols,
            rows,
            scrollback: Scrollback::new(env.config.scrollback_bytes),
            parser: OscParser::new(nonce),
            current: None,
            next_seq: 0,
            recorder,
            recording_seq: 0,
            detached_at: Some(Instant::now()),
            close_reason: None,
            kill_at: None,
            closed_waiters: Vec::new(),
        };
        tokio::spawn(run(state, spawned.pty, spawned.child, cmd_rx));
        tracing::info!(session_id = %id, user_id = %user_id, pid = spawned.pid, "terminal session started");
        Ok(handle)
    }

    /// Allocates an attachment id.
    fn next_attach_id(&self) -> u64 {
        self.next_attach.fetch_add(1, Ordering::Relaxed)
    }
}

/// The last output of a session, as the chunks it came in (no copy), at most `cap` bytes.
struct Scrollback {
    chunks: VecDeque<Bytes>,
    len: usize,
    cap: usize,
}

impl Scrollback {
    fn new(cap: usize) -> Scrollback {
        Scrollback {
            chunks: VecDeque::new(),
            len: 0,
            cap,
        }
    }

    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push_back(chunk);
        while self.len > self.cap {
            let excess = self.len - self.cap;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= excess {
                self.len -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(excess);
                self.len -= excess;
            }
        }
    }

    /// Everything kept, as one buffer (copied once, on reattach).
    fn replay(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            all.extend_from_slice(c);
        }
        all.freeze()
    }
}

/// A command being captured for the history.
struct CurrentCommand {
    seq: i64,
    command: String,
    started_at: String,
    output: Vec<u8>,
    truncated: bool,
}

/// Messages of the client protocol (text frames).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    Input { data: String },
    Resize { cols: u16, rows: u16 },
    Ping,
}

/// The attached client: its socket and what waits to be sent on it.
struct Client {
    attach_id: u64,
    socket: WebSocket,
    outbox: VecDeque<Message>,
    flushing: bool,
    last_heard: Instant,
    last_ping: Instant,
}

/// What the client did.
enum ClientEvent {
    /// Everything queued was sent: the PTY may be read again.
    Drained,
    Received(Message),
    /// The socket closed or failed.
    Gone,
}

impl Client {
    fn new(attach_id: u64, socket: WebSocket) -> Client {
        Client {
            attach_id,
            socket,
            outbox: VecDeque::new(),
            flushing: false,
            last_heard: Instant::now(),
            last_ping: Instant::now(),
        }
    }

    fn busy(&self) -> bool {
        !self.outbox.is_empty() || self.flushing
    }

    fn queue(&mut self, msg: Message) -> bool {
        self.outbox.push_back(msg);
        self.outbox.len() <= MAX_OUTBOX
    }

    fn queue_json(&mut self, value: serde_json::Value) -> bool {
        self.queue(Message::Text(value.to_string().into()))
    }

    /// Sends what is queued and reads what comes in; cancel-safe (all state is here).
    fn poll_io(&mut self, cx: &mut Context<'_>, want_input: bool) -> Poll<ClientEvent> {
        let busy = self.busy();
        let mut socket = Pin::new(&mut self.socket);
        if busy {
            loop {
                if let Some(msg) = self.outbox.pop_front() {
                    match socket.as_mut().poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(ClientEvent::Gone),
                        Poll::Pending => {
                            self.outbox.push_front(msg);
                            break;
                        }
                    }
                    if socket.as_mut().start_send(msg).is_err() {
                        return Poll::Ready(ClientEvent::Gone);
                    }
                    self.flushing = true;
                } else if self.flushing {
                    match socket.as_mut().poll_flush(cx) {
                        Poll::Ready(Ok(())) => {
                            self.flushing = false;
                            return Poll::Ready(ClientEvent::Drained);
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(ClientEvent::Gone),
                        Poll::Pending => break,
                    }
                } else {
                    return Poll::Ready(ClientEvent::Drained);
                }
            }
        }
        if want_input {
            return match socket.poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    self.last_heard = Instant::now();
                    Poll::Ready(ClientEvent::Received(msg))
                }
                Poll::Ready(Some(Err(_)) | None) => Poll::Ready(ClientEvent::Gone),
                Poll::Pending => Poll::Pending,
            };
        }
        Poll::Pending
    }

    /// Sends what is queued, a close frame, and closes; bounded in time.
    async fn finish(mut self) {
        let _ = self.queue(Message::Close(None));
        let drain = std::future::poll_fn(|cx| match self.poll_io(cx, false) {
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

/// Everything of a session but its I/O objects.
struct State {
    id: Arc<str>,
    env: SessionEnv,
    pgid: u32,
    started: Instant,
    last_activity: Instant,
    cols: u16,
    rows: u16,
    scrollback: Scrollback,
    parser: OscParser,
    current: Option<CurrentCommand>,
    next_seq: i64,
    recorder: Option<Recorder>,
    recording_seq: i64,
    detached_at: Option<Instant>,
    close_reason: Option<&'static str>,
    kill_at: Option<tokio::time::Instant>,
    closed_waiters: Vec<oneshot::Sender<()>>,
}

/// The actor's loop.
async fn run(mut state: State, pty: Pty, mut child: Child, mut commands: mpsc::Receiver<Command>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client: Option<Client> = None;
    let mut input = BytesMut::new();
    let mut exit_code: Option<Option<i64>> = None;
    let mut output_done = false;
    let mut exited_at: Option<tokio::time::Instant> = None;
    loop {
        let busy = client.as_ref().is_some_and(Client::busy);
        let can_read = !output_done && !busy;
        let want_input = input.len() < MAX_INPUT_PENDING;
        let kill_at = state.kill_at;
        tokio::select! {
            biased;
            Some(cmd) = commands.recv() => match cmd {
                Command::Attach { socket, reattached } => {
                    if let Some(old) = client.take() {
                        detach_old(old);
                    }
                    client = Some(state.attach(*socket, reattached));
                }
                Command::Close { reason, done } => {
                    if let Some(done) = done {
                        state.closed_waiters.push(done);
                    }
                    state.begin_close(reason);
                }
            },
            event = std::future::poll_fn(|cx| match client.as_mut() {
                Some(c) => c.poll_io(cx, want_input),
                None => Poll::Pending,
            }), if client.is_some() => match event {
                ClientEvent::Drained => {}
                ClientEvent::Gone => state.detach(&mut client),
                ClientEvent::Received(msg) => {
                    if !state.on_message(msg, &mut client, &mut input, &pty) {
                        state.detach(&mut client);
                    } else if !input.is_empty() {
                        // Straight to the PTY when it takes it now: no trip through the loop.
                        write_now(&pty, &mut input);
                    }
                }
            },
            chunk = pty.read(), if can_read => match chunk {
                Ok(chunk) if !chunk.is_empty() => {
                    if !state.on_output(chunk, &mut client) {
                        state.detach(&mut client);
                    }
                }
                _ => output_done = true,
            },
            written = pty.write(&input), if !input.is_empty() => match written {
                Ok(n) => {
                    let _ = input.split_to(n);
                }
                Err(_) => input.clear(),
            },
            status = child.wait(), if exit_code.is_none() => {
                exit_code = Some(status.ok().and_then(|s| s.code()).map(i64::from));
                exited_at = Some(tokio::time::Instant::now());
            }
            () = async { tokio::time::sleep_until(kill_at.expect("guarded")).await }, if kill_at.is_some() && exit_code.is_none() => {
                tokio::spawn(pty::kill_session_off_runtime(state.pgid));
                state.kill_at = None;
            }
            _ = ticker.tick() => state.on_tick(&mut client),
        }
        if let Some(code) = exit_code {
            // Deliver what the shell wrote before it exited, but do not wait forever
            // for a stray process that escaped the group and holds the PTY open.
            let waited = exited_at.map(|t| t.elapsed()).unwrap_or_default();
            let flushed = output_done && !client.as_ref().is_some_and(Client::busy);
            if flushed || waited > Duration::from_secs(2) {
                // Boxed: the closing steps do not weigh on every idle session's task.
                Box::pin(state.finish(code, client.take())).await;
                return;
            }
        }
    }
}

/// Writes keystrokes the PTY takes right now; the rest waits for the write branch.
fn write_now(pty: &Pty, input: &mut BytesMut) {
    if let Ok(n) = pty.try_write(input) {
        let _ = input.split_to(n);
    }
}

/// Tells a replaced client it was detached and closes it, off the actor's path.
fn detach_old(mut old: Client) {
    old.outbox.clear();
    old.flushing = false;
    let _ = old.queue_json(serde_json::json!({"type": "detached"}));
    tokio::spawn(old.finish());
}

impl State {
    fn attach(&mut self, socket: WebSocket, reattached: bool) -> Client {
        let attach_id = self.env.registry.next_attach_id();
        let mut client = Client::new(attach_id, socket);
        let _ = client.queue_json(serde_json::json!({
            "type": "hello", "session_id": &*self.id, "reattached": reattached,
            "cols": self.cols, "rows": self.rows,
        }));
        if self.scrollback.len > 0 {
            let _ = client.queue(Message::Binary(self.scrollback.replay()));
        }
        self.detached_at = None;
        client
    }

    fn detach(&mut self, client: &mut Option<Client>) {
        if let Some(c) = client.take() {
            tracing::debug!(session_id = %self.id, attach_id = c.attach_id, "client detached");
        }
        self.detached_at = Some(Instant::now());
    }

    /// Handles one message from the client; `false` drops the client.
    fn on_message(
        &mut self,
        msg: Message,
        client: &mut Option<Client>,
        input: &mut BytesMut,
        pty: &Pty,
    ) -> bool {
        let Some(c) = client.as_mut() else {
            return true;
        };
        let bytes: Bytes = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => match serde_json::from_str::<ClientMsg>(&t) {
                Ok(ClientMsg::Input { data }) => Bytes::from(data),
                Ok(ClientMsg::Resize { cols, rows }) => {
                    self.resize(pty, cols, rows);
                    return true;
                }
                Ok(ClientMsg::Ping) => return c.queue_json(serde_json::json!({"type": "pong"})),
                Err(e) => {
                    return c.queue_json(serde_json::json!({
                        "type": "error", "code": "bad_message", "message": e.to_string()
                    }));
                }
            },
            Message::Ping(_) | Message::Pong(_) => return true,
            Message::Close(_) => return false,
        };
        if !bytes.is_empty() {
            self.env
                .metrics
                .bytes_in
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.last_activity = Instant::now();
            input.extend_from_slice(&bytes);
        }
        true
    }

    fn resize(&mut self, pty: &Pty, cols: u16, rows: u16) {
        if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
            return;
        }
        if (cols, rows) != (self.cols, self.rows) && pty.resize(cols, rows).is_ok() {
            self.cols = cols;
            self.rows = rows;
            if let Some(r) = &mut self.recorder {
                r.resize(cols, rows);
            }
            self.env.writes.send(&self.id, Write::Size(cols, rows));
        }
    }

    /// SIGHUP now, everything of the session killed after the grace time.
    fn begin_close(&mut self, reason: &'static str) {
        if self.close_reason.is_some() {
            return;
        }
        self.close_reason = Some(reason);
        tracing::info!(session_id = %self.id, reason, "closing terminal session");
        pty::signal_group(self.pgid, Signal::SIGHUP);
        // An interactive bash ignores SIGTERM but not SIGHUP; what ignores SIGHUP, or
        // left the process group, meets SIGKILL.
        self.kill_at = Some(tokio::time::Instant::now() + self.env.config.kill_grace());
    }

    /// Handles PTY output; `false` drops a client that stopped reading control answers.
    fn on_output(&mut self, chunk: Bytes, client: &mut Option<Client>) -> bool {
        self.last_activity = Instant::now();
        self.env
            .metrics
            .bytes_out
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let mut ok = true;
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
                    if let Some(r) = &mut self.recorder {
                        r.output(&bytes);
                        if r.pending_len() >= RECORDING_CHUNK {
                            self.flush_recording(false);
                        }
                    }
                    self.scrollback.push(bytes.clone());
                    if let Some(c) = client.as_mut() {
                        ok &= c.queue(Message::Binary(bytes));
                    }
                }
                Piece::Event(event) => self.on_shell_event(event),
            }
        }
        ok
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
            session_id: self.id.to_string(),
            seq: cur.seq,
            command: cur.command,
            exit_code,
            output: strip_escapes(&cur.output),
            output_truncated: cur.truncated,
            timestamp: cur.started_at,
            finished_at: Some(arcana_core::time::now_string()),
        };
        self.env
            .writes
            .send(&self.id, Write::History(Box::new(row)));
    }

    fn on_tick(&mut self, client: &mut Option<Client>) {
        let config = &self.env.config;
        if self.close_reason.is_none() {
            if self.started.elapsed() > config.max_lifetime() {
                self.begin_close("lifetime");
            } else if self.last_activity.elapsed() > config.idle_timeout() {
                self.begin_close("idle_timeout");
            } else if self
                .detached_at
                .is_some_and(|t| t.elapsed() > config.detach_grace())
            {
                self.begin_close("detached_timeout");
            }
        }
        if let Some(c) = client.as_mut() {
            if c.last_heard.elapsed() > SILENCE_LIMIT {
                self.detach(client);
            } else if c.last_ping.elapsed() > PING_EVERY {
                c.last_ping = Instant::now();
                if !c.queue(Message::Ping(Bytes::new())) {
                    self.detach(client);
                }
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
            self.env.writes.send(&self.id, Write::Recording(seq, chunk));
        }
    }

    async fn finish(mut self, exit_code: Option<i64>, client: Option<Client>) {
        self.finish_command(None);
        self.flush_recording(true);
        let reason = self.close_reason.unwrap_or("exited");
        // Nothing may outlive the session: stop everything it started.
        pty::kill_session_off_runtime(self.pgid).await;
        self.env.writes.close(&self.id, reason, exit_code).await;
        if let Some(mut c) = client {
            let _ = c.queue_json(
                serde_json::json!({"type": "exit", "code": exit_code, "reason": reason}),
            );
            c.finish().await;
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

    #[test]
    fn scrollback_keeps_the_last_bytes_without_copying_chunks() {
        let mut s = Scrollback::new(10);
        let a = Bytes::from_static(b"0123456");
        s.push(a.clone());
        s.push(Bytes::from_static(b"789abc"));
        assert_eq!(&s.replay()[..], b"3456789abc");
        assert_eq!(s.len, 10);
        let mut big = Scrollback::new(4);
        big.push(Bytes::from_static(b"0123456789"));
        assert_eq!(&big.replay()[..], b"6789");
    }
}
