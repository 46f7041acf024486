//! The daemon's side of the control socket: a Unix socket (mode 0600), one task
//! per client, each request handed to the daemon core over a channel.

use super::protocol::{self, Call, MAX_REQUEST};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A request on its way to the core, with where the answer goes.
pub type Request = (Call, oneshot::Sender<Result<Value, String>>);

/// A client that says nothing for this long is dropped (frees its descriptor).
const IDLE: Duration = Duration::from_secs(60);

/// Bind the socket. A stale socket file is replaced; a live daemon on it is an error.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another roadie daemon is already listening on {}",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set mode 0600 on {}: {e}", path.display()))?;
    Ok(listener)
}

/// Accept clients until cancelled; removes the socket file on the way out.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    core: mpsc::Sender<Request>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let core = core.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            r = client(stream, core) => if let Err(e) = r {
                                log::debug!("control client: {e}");
                            },
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, typically: back off instead of spinning.
                    log::warn!("control socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn client(stream: UnixStream, core: mpsc::Sender<Request>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match tokio::time::timeout(IDLE, read_line(&mut reader, &mut line)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        let body = trim_newline(&line);
        let too_long = body.len() > MAX_REQUEST;
        let reply = if too_long {
            protocol::error_reply(&format!("request is larger than {MAX_REQUEST} bytes"))
        } else {
            match protocol::parse_request(body) {
                Err(e) => protocol::error_reply(&e),
                Ok(call) => match dispatch(call, &core).await {
                    Ok(v) => protocol::ok_reply(v),
                    Err(e) => protocol::error_reply(&e),
                },
            }
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\n").await?;
        if too_long {
            // The rest of that line is unread; the stream cannot be resynchronised.
            return Ok(());
        }
    }
}

async fn dispatch(call: Call, core: &mpsc::Sender<Request>) -> Result<Value, String> {
    if call == Call::List {
        return Ok(protocol::list_result());
    }
    let (tx, rx) = oneshot::channel();
    core.send((call, tx))
        .await
        .map_err(|_| "daemon is shutting down".to_string())?;
    rx.await
        .map_err(|_| "daemon is shutting down".to_string())?
}

/// Read up to a newline, but never buffer more than MAX_REQUEST + 1 bytes.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (MAX_REQUEST + 2).saturating_sub(out.len());
        out.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        total += take;
        if done || out.len() > MAX_REQUEST + 1 {
            return Ok(total);
        }
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
