//! `roadie ingress` as a user runs it: the real binary, temp config files, a
//! socket nobody listens on (daemon not running) or a stand-in daemon that
//! answers one `status` call. No root, no network.
//!
//! `ROADIE_UPDATE_GOLDEN=1 cargo test --test ingress` rewrites tests/golden/ingress.yaml.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const HEAD: &str = r#"
[wan]
interfaces = ["eth1"]

[lan]
interface = "br-lan"
address = "192.168.1.1/24"

[[lan.host]]
name = "master"
address = "192.168.1.100"

[[server]]
name = "serveo"
host = "serveo.net"
user = "julio"

[[server]]
name = "vps"
host = "vps.example.org"
"#;

/// Several tunnels: two with a `service` and a `public_host`, one with a
/// named port, one (ssh) without a service, which gets no rule.
const FULL: &str = r#"
[[tunnel]]
name = "ui"
server = "serveo"
remote = "ui-julio:80"
target = "master:80"
service = "web:80"
public_host = "ui-julio.serveo.net"

[[tunnel]]
name = "ssh"
server = "vps"
remote = "2222"
target = "master:22"

[[tunnel]]
name = "api"
server = "vps"
remote = "8443"
target = "master:6443"
service = "kubernetes:https"
public_host = "api.example.org"

[[tunnel]]
name = "grafana"
server = "serveo"
remote = "grafana-julio:80"
target = "192.168.1.101:3000"
service = "grafana:3000"
public_host = "grafana-julio.serveo.net"
"#;

/// A fresh directory for one test.
fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "roadie-ingress-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write_config(dir: &Path, tunnels: &str) -> PathBuf {
    let path = dir.join("roadie.toml");
    std::fs::write(&path, format!("{HEAD}{tunnels}")).expect("write config");
    path
}

fn roadie(config: &Path, socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roadie"))
        .arg("-c")
        .arg(config)
        .arg("-s")
        .arg(socket)
        .arg("ingress")
        .args(args)
        .output()
        .expect("run roadie")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (host, service name, port) of each rule, after checking the fixed parts.
fn rules(doc: &Value) -> Vec<(String, String, Value)> {
    assert_eq!(doc["apiVersion"], "networking.k8s.io/v1", "{doc}");
    assert_eq!(doc["kind"], "Ingress", "{doc}");
    assert_eq!(doc["metadata"]["name"], "roadie", "{doc}");
    assert_eq!(
        doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "roadie"
    );
    let rules = doc["spec"]["rules"].as_array().expect("spec.rules");
    rules
        .iter()
        .map(|r| {
            let paths = r["http"]["paths"].as_array().expect("http.paths");
            assert_eq!(paths.len(), 1, "{r}");
            assert_eq!(paths[0]["path"], "/", "{r}");
            assert_eq!(paths[0]["pathType"], "Prefix", "{r}");
            let svc = &paths[0]["backend"]["service"];
            (
                r["host"].as_str().expect("host").to_string(),
                svc["name"].as_str().expect("service name").to_string(),
                svc["port"].clone(),
            )
        })
        .collect()
}

fn parse_yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap_or_else(|e| panic!("not YAML: {e}\n{s}"))
}

#[test]
fn golden_full_example() {
    let dir = scratch();
    let config = write_config(&dir, FULL);
    let out = roadie(
        &config,
        &dir.join("absent.sock"),
        &["--namespace", "default", "--class", "traefik"],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "roadie: daemon not running; using public_host from {}",
            config.display()
        )
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ingress.yaml");
    if std::env::var_os("ROADIE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &stdout).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("read tests/golden/ingress.yaml");
    assert_eq!(stdout, want, "differs from {}", golden.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_parses_back_with_one_rule_per_service() {
    let dir = scratch();
    let config = write_config(&dir, FULL);
    let socket = dir.join("absent.sock");

    let out = roadie(
        &config,
        &socket,
        &["--class", "traefik", "--namespace", "apps"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = parse_yaml(&text(&out.stdout));
    assert_eq!(doc["metadata"]["namespace"], "apps");
    assert_eq!(doc["spec"]["ingressClassName"], "traefik");
    assert_eq!(
        rules(&doc),
        [
            (
                "ui-julio.serveo.net".into(),
                "web".into(),
                json!({"number": 80})
            ),
            (
                "api.example.org".into(),
                "kubernetes".into(),
                json!({"name": "https"})
            ),
            (
                "grafana-julio.serveo.net".into(),
                "grafana".into(),
                json!({"number": 3000})
            ),
        ]
    );

    // Without options: neither key is there (the cluster's defaults apply).
    let out = roadie(&config, &socket, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = parse_yaml(&text(&out.stdout));
    assert!(doc["metadata"].get("namespace").is_none(), "{doc}");
    assert!(doc["spec"].get("ingressClassName").is_none(), "{doc}");
    assert_eq!(rules(&doc).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_host_names_are_errors_and_nothing_is_printed() {
    let dir = scratch();
    let config = write_config(
        &dir,
        &FULL.replace(
            "public_host = \"ui-julio.serveo.net\"",
            "public_host = \"UI_julio.serveo.net\"",
        ),
    );
    let out = roadie(&config, &dir.join("absent.sock"), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(text(&out.stdout), "", "stderr: {stderr}");
    assert!(
        stderr.contains(
            "roadie: ingress: tunnel \"ui\": host \"UI_julio.serveo.net\" is not a valid \
             Kubernetes host name: upper case and \"_\" are not allowed"
        ),
        "{stderr}"
    );
    // Only the bad tunnel is named.
    assert!(!stderr.contains("tunnel \"api\""), "{stderr}");
    // check-config accepts it: the host is only wrong for Kubernetes.
    let check = Command::new(env!("CARGO_BIN_EXE_roadie"))
        .arg("-c")
        .arg(&config)
        .arg("check-config")
        .output()
        .expect("run roadie");
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tunnel_without_a_known_host_says_what_to_do() {
    let dir = scratch();
    let config = write_config(
        &dir,
        &FULL.replace("public_host = \"api.example.org\"\n", ""),
    );
    let out = roadie(&config, &dir.join("absent.sock"), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(text(&out.stdout), "");
    assert!(stderr.contains("daemon not running"), "{stderr}");
    assert!(
        stderr.contains("tunnel \"api\": no host name known"),
        "{stderr}"
    );
    assert!(stderr.contains("set `public_host"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_service_and_usage_errors_exit_2() {
    let dir = scratch();
    let socket = dir.join("absent.sock");
    let config = write_config(
        &dir,
        "[[tunnel]]\nname = \"ssh\"\nserver = \"vps\"\nremote = \"2222\"\ntarget = \"master:22\"\n",
    );
    let out = roadie(&config, &socket, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no [[tunnel]] has a `service` key"),
        "{stderr}"
    );
    assert!(!stderr.contains("daemon not running"), "{stderr}");
    assert_eq!(text(&out.stdout), "");

    let config = write_config(&dir, FULL);
    for args in [
        &["--namespace", "Apps"][..],
        &["--class"][..],
        &["--frobnicate"][..],
    ] {
        let out = roadie(&config, &socket, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert!(text(&out.stderr).contains("usage:"), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in daemon: answers one request with `status` and hands back the request.
fn fake_daemon(socket: &Path, status: Value) -> std::thread::JoinHandle<Value> {
    let listener = UnixListener::bind(socket).expect("bind fake daemon");
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("read request");
        let reply = json!({ "result": status }).to_string() + "\n";
        (&stream).write_all(reply.as_bytes()).expect("reply");
        serde_json::from_str(&line).expect("request is JSON")
    })
}

#[test]
fn live_hosts_from_the_running_daemon_win() {
    let dir = scratch();
    let config = write_config(&dir, FULL);
    let socket = dir.join("roadie.sock");
    let daemon = fake_daemon(
        &socket,
        json!({"version": "0", "tunnels": [
            {"name": "ui", "state": "up",
             "public_urls": ["http://ui-live.serveo.net", "https://ui-live.serveo.net"]},
            {"name": "ssh", "state": "up", "public_urls": []},
            {"name": "api", "state": "connecting", "public_urls": []},
            {"name": "grafana", "state": "up", "public_urls": ["https://Grafana-live.serveo.net/"]}
        ]}),
    );
    let out = roadie(&config, &socket, &[]);
    let request = daemon.join().expect("fake daemon");
    assert_eq!(request["method"], "status");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "no note when the daemon answers");
    let stdout = text(&out.stdout);
    let hosts: Vec<String> = rules(&parse_yaml(&stdout))
        .into_iter()
        .map(|r| r.0)
        .collect();
    // api has no URL yet: its public_host stands in.
    assert_eq!(
        hosts,
        [
            "ui-live.serveo.net",
            "api.example.org",
            "grafana-live.serveo.net"
        ]
    );
    assert!(
        stdout.contains("# tunnel ui, host from the running daemon"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
