//! Test support for every memsy crate: starts a real `nats-server` with
//! JetStream and a real `redis-server`, each on a free port with its own
//! temporary directory, and stops them when dropped. Tests stay independent
//! and can run in parallel; nothing here mocks our infrastructure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// `env` if set, else the workspace's `.venv/bin/<name>` (where
/// `scripts/setup.sh` installs a current nats-server), else `PATH`, else
/// `fallbacks`.
fn find_binary(name: &str, env: &str, fallbacks: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin").join(name);
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for f in fallbacks {
        if std::path::Path::new(f).is_file() {
            return PathBuf::from(f);
        }
    }
    panic!("{name} not found: install it (see README) or set {env}");
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// A `nats-server -js` of our own.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let bin = find_binary(
            "nats-server",
            "MEMSY_TEST_NATS_SERVER",
            &["/usr/sbin/nats-server", "/usr/local/bin/nats-server"],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        wait_for_port(port, &mut child, "nats-server");
        Self { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (for tests of what happens when the broker is gone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` of our own that keeps nothing on disk.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let bin = find_binary(
            "redis-server",
            "MEMSY_TEST_REDIS_SERVER",
            &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        wait_for_port(port, &mut child, "redis-server");
        Self { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Qdrant server for the tests that need one: the running server at
/// `QDRANT_URL` (gRPC, optionally `QDRANT_API_KEY`), else one started from
/// the binary at `QDRANT_BIN` on free ports with its own storage, else none
/// (the caller skips; [`skip_without_qdrant`] says so once per process).
pub enum Qdrant {
    Running { url: String, api_key: Option<String> },
    Started(QdrantServer),
}

impl Qdrant {
    pub fn from_env() -> Option<Self> {
        if let Some(url) = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()) {
            return Some(Self::Running { url, api_key: std::env::var("QDRANT_API_KEY").ok() });
        }
        let bin = std::env::var("QDRANT_BIN").ok().filter(|b| !b.is_empty())?;
        Some(Self::Started(QdrantServer::start(&bin)))
    }

    /// The gRPC URL `qdrant-client` (and `QDRANT_URL`) takes.
    pub fn url(&self) -> String {
        match self {
            Self::Running { url, .. } => url.clone(),
            Self::Started(s) => s.grpc_url(),
        }
    }

    pub fn api_key(&self) -> Option<String> {
        match self {
            Self::Running { api_key, .. } => api_key.clone(),
            Self::Started(_) => None,
        }
    }

    fn watched(self) -> Self {
        if let Self::Started(s) = &self {
            s.watch_parent();
        }
        self
    }
}

/// One [`Qdrant`] per test process, started on first use; `None` (and one
/// line on stderr) when neither variable is set. A started server outlives
/// no test process: its watcher stops it when this process is gone.
pub fn shared_qdrant() -> Option<&'static Qdrant> {
    static SHARED: std::sync::OnceLock<Option<Qdrant>> = std::sync::OnceLock::new();
    let q = SHARED.get_or_init(|| Qdrant::from_env().map(|q| q.watched())).as_ref();
    if q.is_none() {
        skip_without_qdrant();
    }
    q
}

/// Says once per process that the Qdrant server tests were skipped.
pub fn skip_without_qdrant() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!("skipped: the Qdrant server tests need QDRANT_BIN (a qdrant binary to start) or QDRANT_URL (a running server)")
    });
}

/// A `qdrant` server of our own: HTTP and gRPC on free ports, storage and
/// working directory in a temporary directory, stopped when dropped.
pub struct QdrantServer {
    child: Child,
    pub http_port: u16,
    pub grpc_port: u16,
    dir: tempfile::TempDir,
}

impl QdrantServer {
    pub fn start(bin: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (http_port, grpc_port) = (free_port(), free_port());
        let mut child = Self::command(bin, dir.path(), http_port, grpc_port).spawn().expect("spawn qdrant");
        wait_for_http_ok(http_port, "/readyz", &mut child, "qdrant");
        Self { child, http_port, grpc_port, dir }
    }

    fn command(bin: &str, dir: &std::path::Path, http_port: u16, grpc_port: u16) -> Command {
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__LOG_LEVEL", "WARN")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (kill -9) and keeps its storage.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and storage (after [`Self::kill`]).
    pub fn restart(&mut self, bin: &str) {
        self.kill();
        self.child =
            Self::command(bin, self.dir.path(), self.http_port, self.grpc_port).spawn().expect("respawn qdrant");
        wait_for_http_ok(self.http_port, "/readyz", &mut self.child, "qdrant");
    }

    /// Hands the server to a watcher process that kills it once this
    /// process has exited: for a server kept in a `static`, which is never
    /// dropped.
    fn watch_parent(&self) {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {child} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null",
            parent = std::process::id(),
            child = self.child.id()
        );
        let _ = Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).spawn();
    }
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `GET http://127.0.0.1:<port><path>` answers 200.
fn wait_for_http_ok(port: u16, path: &str, child: &mut Child, what: &str) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not answer {path} on port {port} within 30 s");
}

/// The workspace root (two levels above any crate under `services/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The all-MiniLM-L6-v2 model directory, failing loudly when it is missing.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("MEMSY__EMBEDDER__MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("models/all-minilm-l6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "model not found in {}: run scripts/fetch-model.sh",
        dir.display()
    );
    dir
}

/// An active, actor-level, session-less memory of `actor` in `org` with
/// `text`, written at `at`: the record store tests and benchmarks start from.
pub fn sample_memory(org: &str, actor: &str, text: &str, at: &str) -> memsy_core::model::Memory {
    memsy_core::model::Memory {
        memory_id: uuid::Uuid::new_v4().to_string(),
        org_id: org.into(),
        scope_level: "actor".into(),
        actor_id: Some(actor.into()),
        role_id: None,
        team_id: None,
        session_id: None,
        memory_type: "fact".into(),
        memory_kind: "semantic".into(),
        status: "active".into(),
        text: text.into(),
        title: "title".into(),
        summary: "summary".into(),
        tags: vec!["t1".into(), "t2".into()],
        entities: Vec::new(),
        confidence: 0.9,
        strength: 1.0,
        recall_count: 0,
        last_recalled_at: None,
        decay_half_life_days: 30.0,
        pinned: false,
        source_event_ids: vec![memsy_core::ids::new_event_id()],
        source_metadata: vec![serde_json::json!({"event_id": "e", "metadata": {"plan": "pro"}})],
        observed_at: at.into(),
        effective_from: None,
        effective_to: None,
        created_at: at.into(),
        slot: None,
        context: None,
        updated_at: at.into(),
    }
}

/// The name and the CPU ticks (utime + stime, in `USER_HZ`) of a Linux
/// `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` line. The name may
/// hold spaces and parentheses, so the fields are counted after the last
/// `)`: state is the first of them, utime the 12th, stime the 13th.
pub fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::stat_ticks;

    #[test]
    fn stat_line_with_spaces_and_parens_in_the_name() {
        let line = "4242 (tokio rt (x)) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(("tokio rt (x)".to_string(), 281)));
        assert_eq!(stat_ticks("4242 (short) S 1 2"), None);
    }
}
