//! One limits configuration written once and rendered twice: as an nginx `http {}` snippet and as edgeguard
//! TOML, so both sides are configured alike by construction.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::nginx::LISTEN_PLACEHOLDER;

/// `limit_req_zone KEY zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqZone {
    pub name: String,
    /// nginx syntax, also edgeguard's: `$binary_remote_addr`, `$arg_a`, ...
    pub key: String,
    pub size: String,
    /// `Nr/s` or `Nr/m`.
    pub rate: String,
}

/// `limit_conn_zone KEY zone=NAME:SIZE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnZone {
    pub name: String,
    pub key: String,
    pub size: String,
}

/// nginx's `nodelay` / `delay=N` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delay {
    #[default]
    Default,
    NoDelay,
    Delay(u32),
}

/// `limit_req zone=Z [burst=B] [nodelay | delay=D]`, plus dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqLimit {
    pub zone: String,
    pub burst: u32,
    pub delay: Delay,
    /// nginx has one `limit_req_dry_run` per level, so every limit of one list must agree.
    pub dry_run: bool,
}

impl ReqLimit {
    pub fn new(zone: &str) -> Self {
        Self {
            zone: zone.to_string(),
            burst: 0,
            delay: Delay::Default,
            dry_run: false,
        }
    }

    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    pub fn nodelay(mut self) -> Self {
        self.delay = Delay::NoDelay;
        self
    }

    pub fn delay(mut self, n: u32) -> Self {
        self.delay = Delay::Delay(n);
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// `limit_conn ZONE N`, plus dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimit {
    pub zone: String,
    pub conn: u32,
    pub dry_run: bool,
}

impl ConnLimit {
    pub fn new(zone: &str, conn: u32) -> Self {
        Self {
            zone: zone.to_string(),
            conn,
            dry_run: false,
        }
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// A path prefix whose lists, when given, replace the site's (as nginx's inheritance does).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub path: String,
    pub limit_req: Option<Vec<ReqLimit>>,
    pub limit_conn: Option<Vec<ConnLimit>>,
}

impl Location {
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_string(),
            ..Self::default()
        }
    }

    pub fn limit_req(mut self, limits: Vec<ReqLimit>) -> Self {
        self.limit_req = Some(limits);
        self
    }

    pub fn limit_conn(mut self, limits: Vec<ConnLimit>) -> Self {
        self.limit_conn = Some(limits);
        self
    }
}

/// An nginx `server` / an edgeguard `[[domain]]`, chosen by the Host header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Site {
    pub host: String,
    pub limit_req_status: Option<u16>,
    pub limit_conn_status: Option<u16>,
    pub limit_req: Vec<ReqLimit>,
    pub limit_conn: Vec<ConnLimit>,
    pub locations: Vec<Location>,
}

impl Site {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_string(),
            ..Self::default()
        }
    }

    pub fn limit_req(mut self, limits: Vec<ReqLimit>) -> Self {
        self.limit_req = limits;
        self
    }

    pub fn limit_conn(mut self, limits: Vec<ConnLimit>) -> Self {
        self.limit_conn = limits;
        self
    }

    pub fn limit_req_status(mut self, status: u16) -> Self {
        self.limit_req_status = Some(status);
        self
    }

    pub fn limit_conn_status(mut self, status: u16) -> Self {
        self.limit_conn_status = Some(status);
        self
    }

    pub fn location(mut self, location: Location) -> Self {
        self.locations.push(location);
        self
    }

    /// The lists that apply to `path`: the longest matching location's, else the site's.
    pub fn lists_for(&self, path: &str) -> (&[ReqLimit], &[ConnLimit]) {
        let path_only = path.split('?').next().unwrap_or(path);
        let loc = self
            .locations
            .iter()
            .filter(|l| path_only.starts_with(&l.path))
            .max_by_key(|l| l.path.len());
        let req = loc
            .and_then(|l| l.limit_req.as_deref())
            .unwrap_or(&self.limit_req);
        let conn = loc
            .and_then(|l| l.limit_conn.as_deref())
            .unwrap_or(&self.limit_conn);
        (req, conn)
    }
}

/// Zones and sites; the first site is the default for an unknown Host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    pub req_zones: Vec<ReqZone>,
    pub conn_zones: Vec<ConnZone>,
    pub sites: Vec<Site>,
}

impl Scenario {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn req_zone(mut self, name: &str, key: &str, size: &str, rate: &str) -> Self {
        self.req_zones.push(ReqZone {
            name: name.into(),
            key: key.into(),
            size: size.into(),
            rate: rate.into(),
        });
        self
    }

    pub fn conn_zone(mut self, name: &str, key: &str, size: &str) -> Self {
        self.conn_zones.push(ConnZone {
            name: name.into(),
            key: key.into(),
            size: size.into(),
        });
        self
    }

    pub fn site(mut self, site: Site) -> Self {
        self.sites.push(site);
        self
    }

    /// The site a Host header selects (nginx's default server when none matches).
    pub fn site_for(&self, host: &str) -> Option<&Site> {
        self.sites
            .iter()
            .find(|s| s.host.eq_ignore_ascii_case(host))
            .or(self.sites.first())
    }

    /// The inside of nginx's `http {}` block: zones, then one server per site listening on `@LISTEN@`,
    /// every location proxying to `origin`.
    ///
    /// Panics when a list mixes dry-run and enforced limits, which nginx cannot express (one
    /// `limit_req_dry_run` per level): scenarios are written by tests, not read from input.
    pub fn nginx_snippet(&self, origin: SocketAddr) -> String {
        let mut s = String::new();
        for z in &self.req_zones {
            let _ = writeln!(
                s,
                "limit_req_zone {} zone={}:{} rate={};",
                z.key, z.name, z.size, z.rate
            );
        }
        for z in &self.conn_zones {
            let _ = writeln!(s, "limit_conn_zone {} zone={}:{};", z.key, z.name, z.size);
        }
        for (i, site) in self.sites.iter().enumerate() {
            let default = if i == 0 { " default_server" } else { "" };
            let _ = writeln!(s, "server {{");
            let _ = writeln!(s, "    listen {LISTEN_PLACEHOLDER}{default};");
            let _ = writeln!(s, "    server_name {};", site.host);
            if let Some(code) = site.limit_req_status {
                let _ = writeln!(s, "    limit_req_status {code};");
            }
            if let Some(code) = site.limit_conn_status {
                let _ = writeln!(s, "    limit_conn_status {code};");
            }
            nginx_lists(
                &mut s,
                "    ",
                Some(&site.limit_req),
                Some(&site.limit_conn),
            );
            let has_root = site.locations.iter().any(|l| l.path == "/");
            for loc in site
                .locations
                .iter()
                .chain((!has_root).then(|| Location::new("/")).as_ref())
            {
                let _ = writeln!(s, "    location {} {{", loc.path);
                nginx_lists(
                    &mut s,
                    "        ",
                    loc.limit_req.as_ref(),
                    loc.limit_conn.as_ref(),
                );
                let _ = writeln!(s, "        proxy_pass http://{origin};");
                let _ = writeln!(s, "    }}");
            }
            let _ = writeln!(s, "}}");
        }
        s
    }

    /// edgeguard's configuration file for the same limits: one node listening on 127.0.0.1:0, one
    /// `[[domain]]` per site with `explain = true`, the cache off so every request reaches the limits and
    /// the origin alike.
    pub fn edgeguard_toml(&self, origin: SocketAddr, data_dir: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[node]\nname = \"e2e\"\ntier = \"edge\"\nlisten = [\"127.0.0.1:0\"]\ndata_dir = {}\n",
            toml_str(&data_dir.display().to_string())
        );
        let _ = writeln!(s, "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"e2e\"\n");
        for z in &self.req_zones {
            let _ = writeln!(
                s,
                "[[limit_req_zone]]\nname = {}\nkey = {}\nsize = {}\nrate = {}\n",
                toml_str(&z.name),
                toml_str(&z.key),
                toml_str(&z.size),
                toml_str(&z.rate)
            );
        }
        for z in &self.conn_zones {
            let _ = writeln!(
                s,
                "[[limit_conn_zone]]\nname = {}\nkey = {}\nsize = {}\n",
                toml_str(&z.name),
                toml_str(&z.key),
                toml_str(&z.size)
            );
        }
        for site in &self.sites {
            let _ = writeln!(
                s,
                "[[domain]]\nname = {}\norigins = [{}]\nexplain = true",
                toml_str(&site.host),
                toml_str(&origin.to_string())
            );
            if let Some(code) = site.limit_req_status {
                let _ = writeln!(s, "limit_req_status = {code}");
            }
            if let Some(code) = site.limit_conn_status {
                let _ = writeln!(s, "limit_conn_status = {code}");
            }
            let _ = writeln!(s, "limit_req = {}", toml_req_list(&site.limit_req));
            let _ = writeln!(s, "limit_conn = {}\n", toml_conn_list(&site.limit_conn));
            for loc in &site.locations {
                let _ = writeln!(s, "[[domain.location]]\npath = {}", toml_str(&loc.path));
                if let Some(list) = &loc.limit_req {
                    let _ = writeln!(s, "limit_req = {}", toml_req_list(list));
                }
                if let Some(list) = &loc.limit_conn {
                    let _ = writeln!(s, "limit_conn = {}", toml_conn_list(list));
                }
                s.push('\n');
            }
            let _ = writeln!(s, "[domain.cache]\nenabled = false\n");
        }
        s
    }
}

fn nginx_lists(
    s: &mut String,
    indent: &str,
    req: Option<&Vec<ReqLimit>>,
    conn: Option<&Vec<ConnLimit>>,
) {
    if let Some(req) = req.filter(|l| !l.is_empty()) {
        let dry = uniform_dry_run(req.iter().map(|l| l.dry_run));
        let _ = writeln!(s, "{indent}limit_req_dry_run {};", on_off(dry));
        for l in req {
            let _ = write!(s, "{indent}limit_req zone={}", l.zone);
            if l.burst > 0 {
                let _ = write!(s, " burst={}", l.burst);
            }
            match l.delay {
                Delay::Default => {}
                Delay::NoDelay => s.push_str(" nodelay"),
                Delay::Delay(n) => {
                    let _ = write!(s, " delay={n}");
                }
            }
            s.push_str(";\n");
        }
    }
    if let Some(conn) = conn.filter(|l| !l.is_empty()) {
        let dry = uniform_dry_run(conn.iter().map(|l| l.dry_run));
        let _ = writeln!(s, "{indent}limit_conn_dry_run {};", on_off(dry));
        for l in conn {
            let _ = writeln!(s, "{indent}limit_conn {} {};", l.zone, l.conn);
        }
    }
}

fn uniform_dry_run(mut flags: impl Iterator<Item = bool>) -> bool {
    let first = flags.next().unwrap_or(false);
    assert!(
        flags.all(|f| f == first),
        "nginx has one dry-run switch per level: a list must be all dry run or none"
    );
    first
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_req_list(list: &[ReqLimit]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|l| {
            let mut item = format!("{{ zone = {}", toml_str(&l.zone));
            if l.burst > 0 {
                let _ = write!(item, ", burst = {}", l.burst);
            }
            match l.delay {
                Delay::Default => {}
                Delay::NoDelay => item.push_str(", nodelay = true"),
                Delay::Delay(n) => {
                    let _ = write!(item, ", delay = {n}");
                }
            }
            if l.dry_run {
                item.push_str(", dry_run = true");
            }
            item.push_str(" }");
            item
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn toml_conn_list(list: &[ConnLimit]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|l| {
            let dry = if l.dry_run { ", dry_run = true" } else { "" };
            format!("{{ zone = {}, conn = {}{dry} }}", toml_str(&l.zone), l.conn)
        })
        .collect();
    format!("[{}]", items.join(", "))
}
