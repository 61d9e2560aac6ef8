//! A real nginx started as a child process, the reference the differential tests compare edgeguard with.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// Where Debian's package puts the binary; the README's test command installs `nginx-light`.
pub const NGINX_BIN: &str = "/usr/sbin/nginx";

/// What a snippet writes where the harness's listen address goes: `listen @LISTEN@;`.
pub const LISTEN_PLACEHOLDER: &str = "@LISTEN@";

/// How long nginx gets to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop (SIGQUIT) may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// A port picked by binding :0 can be taken by someone else before nginx binds it; try again then.
const START_ATTEMPTS: usize = 3;

/// Whether the reference binary is installed; the differential suite skips (and says why) without it.
pub fn nginx_available() -> bool {
    Path::new(NGINX_BIN).is_file()
}

/// One nginx master with one worker, everything it writes under its own temporary directory, listening on
/// 127.0.0.1 at a port picked at run time. Stopped with SIGQUIT (then SIGKILL) when dropped.
pub struct Nginx {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes `nginx.conf` around `http_snippet` (the inside of the `http {}` block; every `@LISTEN@` in it
    /// becomes `127.0.0.1:PORT`), starts nginx and waits until the port accepts connections.
    ///
    /// The `http` block already holds `add_header X-LR $limit_req_status always;` and
    /// `add_header X-LC $limit_conn_status always;` (a server or location that writes its own `add_header`
    /// loses them, as nginx inherits add_header only when a level has none).
    pub fn start(http_snippet: &str) -> Result<Self, HarnessError> {
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(http_snippet) {
                Ok(nginx) => return Ok(nginx),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| HarnessError::Nginx("never attempted".into())))
    }

    fn start_once(http_snippet: &str) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("edgeguard-e2e-nginx-")
            .tempdir()
            .map_err(HarnessError::Io)?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = render_conf(dir.path(), addr, http_snippet);
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(HarnessError::Io)?;
        let child = Command::new(NGINX_BIN)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(HarnessError::Io)?;
        let mut nginx = Self {
            child: Some(child),
            addr,
            dir,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(HarnessError::Nginx(format!(
                    "nginx exited at start ({status}); error log:\n{}",
                    self.error_log()
                )));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Nginx(format!(
                    "nginx did not accept on {} within {START_TIMEOUT:?}; error log:\n{}",
                    self.addr,
                    self.error_log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address every `@LISTEN@` was replaced with.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The whole error log so far (debug level).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Every `limit_req[i]: RC E.EEE` debug line so far, in log order: (limit index, nginx rc, excess in
    /// milli-requests). rc is nginx's: 0 OK, -2 AGAIN (a limit before the last), -3 BUSY, -5 DECLINED.
    pub fn limit_req_log(&self) -> Vec<LimitReqLogLine> {
        parse_limit_req_log(&self.error_log())
    }

    /// Graceful stop: SIGQUIT to the master, then SIGKILL if it has not exited in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `limit_req[i]: RC E.EEE` line of nginx's debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReqLogLine {
    pub index: u32,
    pub rc: i32,
    pub excess_milli: u64,
}

/// Parses the `limit_req[i]: RC E.EEE` lines out of a debug error log.
pub fn parse_limit_req_log(log: &str) -> Vec<LimitReqLogLine> {
    log.lines().filter_map(parse_limit_req_line).collect()
}

fn parse_limit_req_line(line: &str) -> Option<LimitReqLogLine> {
    let rest = &line[line.find("limit_req[")? + "limit_req[".len()..];
    let (index, rest) = rest.split_once("]: ")?;
    let mut words = rest.split_whitespace();
    let rc = words.next()?.parse().ok()?;
    let (whole, frac) = words.next()?.split_once('.')?;
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = frac.parse().ok()?;
    Some(LimitReqLogLine {
        index: index.parse().ok()?,
        rc,
        excess_milli: whole * 1000 + frac,
    })
}

fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(HarnessError::Io)?;
    Ok(listener.local_addr().map_err(HarnessError::Io)?.port())
}

fn render_conf(dir: &Path, addr: SocketAddr, http_snippet: &str) -> String {
    let p = |name: &str| -> PathBuf { dir.join(name) };
    let mut conf = String::new();
    // Running as root, the worker would switch to `nobody`, which cannot enter a 0700 temp dir.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        conf.push_str("user root;\n");
    }
    let _ = write!(
        conf,
        "worker_processes 1;\n\
         error_log {err} debug;\n\
         pid {pid};\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         access_log {access};\n\
         client_body_temp_path {body};\n\
         proxy_temp_path {proxy};\n\
         fastcgi_temp_path {fastcgi};\n\
         uwsgi_temp_path {uwsgi};\n\
         scgi_temp_path {scgi};\n\
         add_header X-LR $limit_req_status always;\n\
         add_header X-LC $limit_conn_status always;\n\
         {snippet}\n\
         }}\n",
        err = p("error.log").display(),
        pid = p("nginx.pid").display(),
        access = p("access.log").display(),
        body = p("client_body").display(),
        proxy = p("proxy").display(),
        fastcgi = p("fastcgi").display(),
        uwsgi = p("uwsgi").display(),
        scgi = p("scgi").display(),
        snippet = http_snippet.replace(LISTEN_PLACEHOLDER, &addr.to_string()),
    );
    conf
}
