//! The Kubernetes tutorial's `worker.py` as a static binary, so a `FROM scratch` image needs no
//! interpreter: `amqp-consume` runs it once per message with the body on stdin.
//!
//! It reads all of stdin, prints `Processing <first line>` on stdout, sleeps, and exits.
//!
//! Environment:
//! - `WORKER_SLEEP`: seconds to sleep, fractions allowed (default 10, the tutorial's).
//! - `WORKER_EXIT_CODE`: exit status 0-255 (default 0). Without `WORKER_FAIL_ON` every item
//!   exits with it.
//! - `WORKER_FAIL_ON`: only the item whose first line equals this value fails, with
//!   `WORKER_EXIT_CODE` when that is non-zero, else 1. Every other item exits 0.
//!
//! A bad setting or an unreadable stdin exits 2 with one line on stderr.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// The tutorial's worker sleeps 10 s so that the Job's parallelism can be watched.
const DEFAULT_SLEEP: Duration = Duration::from_secs(10);
/// Distinct from the configurable failure status, so a misconfigured test is not mistaken for
/// a deliberate failure.
const CONFIG_ERROR: u8 = 2;

#[derive(Debug, PartialEq)]
struct Config {
    sleep: Duration,
    exit_code: u8,
    fail_on: Option<Vec<u8>>,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            // Nothing better to do if stderr itself is gone.
            let _ = writeln!(std::io::stderr(), "worker: {msg}");
            ExitCode::from(CONFIG_ERROR)
        }
    }
}

fn run() -> Result<u8, String> {
    let config = Config::from_env(|name| std::env::var_os(name))?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let item = first_line(&body);

    let mut line = b"Processing ".to_vec();
    line.extend_from_slice(item);
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing stdout: {e}"))?;
    drop(stdout);

    std::thread::sleep(config.sleep);

    let code = config.exit_code_for(item);
    if code != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "worker: failing on purpose for item '{}' (exit {code})",
            String::from_utf8_lossy(item)
        );
    }
    Ok(code)
}

/// The body up to its first newline; a CRLF line ending is dropped too.
fn first_line(body: &[u8]) -> &[u8] {
    let line = body
        .iter()
        .position(|&b| b == b'\n')
        .map_or(body, |end| &body[..end]);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Config {
    fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Result<Config, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
                    .map_err(|_| format!("{name} is not valid UTF-8")),
            }
        };
        let sleep = match text("WORKER_SLEEP")? {
            None => DEFAULT_SLEEP,
            Some(s) => s
                .parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| {
                    format!("WORKER_SLEEP must be a non-negative number of seconds, not '{s}'")
                })?,
        };
        let exit_code = match text("WORKER_EXIT_CODE")? {
            None => 0,
            Some(s) => s
                .parse::<u8>()
                .map_err(|_| format!("WORKER_EXIT_CODE must be 0 to 255, not '{s}'"))?,
        };
        // Compared with raw bytes, and an empty value is kept: it targets an empty body.
        let fail_on = var("WORKER_FAIL_ON").map(|v| {
            use std::os::unix::ffi::OsStringExt;
            v.into_vec()
        });
        Ok(Config {
            sleep,
            exit_code,
            fail_on,
        })
    }

    fn exit_code_for(&self, item: &[u8]) -> u8 {
        match &self.fail_on {
            None => self.exit_code,
            Some(target) if target.as_slice() == item => self.exit_code.max(1),
            Some(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_env(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn first_line_stops_at_newline_and_drops_cr() {
        assert_eq!(first_line(b"apple"), b"apple");
        assert_eq!(first_line(b"apple\nbanana\n"), b"apple");
        assert_eq!(first_line(b"apple\r\n"), b"apple");
        assert_eq!(first_line(b""), b"");
        assert_eq!(first_line(b"\nx"), b"");
    }

    #[test]
    fn defaults_match_the_tutorial() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sleep, Duration::from_secs(10));
        assert_eq!(c.exit_code_for(b"anything"), 0);
    }

    #[test]
    fn sleep_accepts_fractions_and_rejects_junk() {
        assert_eq!(
            config(&[("WORKER_SLEEP", "0.25")]).unwrap().sleep,
            Duration::from_millis(250)
        );
        assert_eq!(
            config(&[("WORKER_SLEEP", "")]).unwrap().sleep,
            DEFAULT_SLEEP
        );
        for bad in ["-1", "abc", "inf", "NaN", "1e30"] {
            let err = config(&[("WORKER_SLEEP", bad)]).unwrap_err();
            assert!(err.contains("WORKER_SLEEP"), "{bad}: {err}");
        }
    }

    #[test]
    fn exit_code_applies_to_every_item_without_fail_on() {
        let c = config(&[("WORKER_EXIT_CODE", "7")]).unwrap();
        assert_eq!(c.exit_code_for(b"apple"), 7);
        assert!(config(&[("WORKER_EXIT_CODE", "256")]).is_err());
        assert!(config(&[("WORKER_EXIT_CODE", "-1")]).is_err());
    }

    #[test]
    fn fail_on_targets_one_item() {
        let c = config(&[("WORKER_FAIL_ON", "cherry")]).unwrap();
        assert_eq!(c.exit_code_for(b"cherry"), 1);
        assert_eq!(c.exit_code_for(b"apple"), 0);
        let c = config(&[("WORKER_FAIL_ON", "cherry"), ("WORKER_EXIT_CODE", "3")]).unwrap();
        assert_eq!(c.exit_code_for(b"cherry"), 3);
        assert_eq!(c.exit_code_for(b"cherry2"), 0);
        let c = config(&[("WORKER_FAIL_ON", "")]).unwrap();
        assert_eq!(c.exit_code_for(b""), 1);
    }
}
