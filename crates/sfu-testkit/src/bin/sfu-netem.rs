//! `sfu-netem`: the impairment proxy as a command, for tests driven from Node or a shell.
//! Usage, the JSON keys and the stdin commands are documented in the crate's `netem` module.

#![deny(unsafe_code)]

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use sfu_testkit::netem::{Direction, LinkConfig, Netem, NetemConfig};

const USAGE: &str = "usage: sfu-netem --listen IP:PORT --upstream-udp IP:PORT [--upstream-tcp IP:PORT]
                 [--bind-upstream IP] [--up JSON] [--down JSON] [--seed N]
                 [--idle-timeout-s S] [--max-mappings N] [--max-tcp N]
Prints {\"udp\":...,\"tcp\":...} when ready; then reads JSON commands on stdin, one per line:
  {\"set\":\"up\"|\"down\"|\"both\",\"link\":{...}}   {\"counters\":true}   {\"get\":\"up\"|\"down\"}
Exits on stdin EOF or SIGTERM.";

fn parse_args(args: &[String]) -> Result<NetemConfig, String> {
    let mut cfg = NetemConfig::default();
    let mut listen = None;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let val = args.get(i + 1).ok_or_else(|| format!("{flag} needs a value"))?;
        let addr = |v: &str| v.parse::<SocketAddr>().map_err(|e| format!("{flag} {v}: {e}"));
        let link = |v: &str| {
            let j: Value = serde_json::from_str(v).map_err(|e| format!("{flag}: bad JSON: {e}"))?;
            LinkConfig::from_json(&j).map_err(|e| format!("{flag}: {e}"))
        };
        let int = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag {
            "--listen" => listen = Some(addr(val)?),
            "--upstream-udp" => cfg.upstream_udp = Some(addr(val)?),
            "--upstream-tcp" => cfg.upstream_tcp = Some(addr(val)?),
            "--bind-upstream" => {
                cfg.bind_upstream = val.parse::<IpAddr>().map_err(|e| format!("{flag} {val}: {e}"))?
            }
            "--up" => cfg.up = link(val)?,
            "--down" => cfg.down = link(val)?,
            "--seed" => cfg.seed = int(val)?,
            "--idle-timeout-s" => cfg.udp_idle_timeout = Duration::from_secs(int(val)?),
            "--max-mappings" => cfg.max_udp_mappings = int(val)? as usize,
            "--max-tcp" => cfg.max_tcp_connections = int(val)? as usize,
            _ => return Err(format!("unknown option {flag}")),
        }
        i += 2;
    }
    cfg.listen = listen.ok_or("--listen is required")?;
    Ok(cfg)
}

/// Answers one stdin command.
fn command(netem: &Netem, line: &str) -> Value {
    let cmd: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"error": format!("bad JSON: {e}")}),
    };
    if let Some(dir) = cmd.get("set") {
        let dirs: &[Direction] = match dir.as_str() {
            Some("up") => &[Direction::Up],
            Some("down") => &[Direction::Down],
            Some("both") => &Direction::BOTH,
            _ => return json!({"error": "set must be \"up\", \"down\" or \"both\""}),
        };
        let link = match LinkConfig::from_json(cmd.get("link").unwrap_or(&Value::Null)) {
            Ok(l) => l,
            Err(e) => return json!({"error": e.to_string()}),
        };
        for d in dirs {
            if let Err(e) = netem.set_link(*d, link.clone()) {
                return json!({"error": e.to_string()});
            }
        }
        return json!({"ok": true});
    }
    if cmd.get("counters").is_some() {
        return netem.counters().to_json();
    }
    if let Some(dir) = cmd.get("get") {
        return match dir.as_str().and_then(Direction::parse) {
            Some(d) => netem.link(d).to_json(),
            None => json!({"error": "get must be \"up\" or \"down\""}),
        };
    }
    json!({"error": "unknown command (set, counters, get)"})
}

/// Prints one line; false when stdout is gone (the parent exited).
fn emit(out: &mut impl Write, v: &Value) -> bool {
    writeln!(out, "{v}").and_then(|_| out.flush()).is_ok()
}

#[allow(unsafe_code)]
fn default_sigterm() {
    // SAFETY: resetting a signal to its default disposition at startup, before any thread
    // exists. An inherited "ignore" would otherwise keep the proxy alive after SIGTERM.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigterm();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("sfu-netem: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let netem = match Netem::start(cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("sfu-netem: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ready = serde_json::Map::new();
    if let Some(a) = netem.udp_addr() {
        ready.insert("udp".into(), a.to_string().into());
    }
    if let Some(a) = netem.tcp_addr() {
        ready.insert("tcp".into(), a.to_string().into());
    }
    let mut out = io::stdout().lock();
    if !emit(&mut out, &Value::Object(ready)) {
        return ExitCode::FAILURE;
    }
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if !emit(&mut out, &command(&netem, &line)) {
            break;
        }
    }
    eprintln!("sfu-netem: {}", netem.counters().to_json());
    netem.stop();
    ExitCode::SUCCESS
}
