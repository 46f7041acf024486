//! The CLI's side of the control socket: plain blocking std I/O, no runtime.

use super::protocol;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longer than the slowest method (readdress waits for the hook, at most 30 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a call failed: no daemon listens on the socket, it could not be
/// reached otherwise, or it answered with an error.
#[derive(Debug)]
pub enum CallError {
    /// The socket is absent or refuses connections (`roadie ingress` falls back to the config).
    NotRunning(String),
    Unreachable(String),
    Daemon(String),
}

/// Send one request and wait for its reply.
pub fn call(socket: &Path, method: &str, params: &Value) -> Result<Value, CallError> {
    call_within(socket, method, params, REPLY_TIMEOUT)
}

/// [`call`], waiting at most `timeout` for the reply.
pub fn call_within(
    socket: &Path,
    method: &str,
    params: &Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            CallError::NotRunning(format!(
                "roadie daemon is not running (no one listens on {}: {e})",
                socket.display()
            ))
        }
        _ => CallError::Unreachable(format!("cannot connect to {}: {e}", socket.display())),
    })?;
    let unreachable = |e: std::io::Error| {
        CallError::Unreachable(format!("control socket {}: {e}", socket.display()))
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    let req = serde_json::json!({ "method": method, "params": params });
    let mut line = req.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(unreachable)?;
    if reply.is_empty() {
        return Err(CallError::Unreachable(
            "the daemon closed the connection without replying".into(),
        ));
    }
    match protocol::parse_reply(reply.trim_end()) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(m)) => Err(CallError::Daemon(m)),
        Err(m) => Err(CallError::Unreachable(m)),
    }
}
