//! What a reload changes: the config diff, as a pure function.
//!
//! A session runs per `[[server]]` that at least one tunnel lists as a way
//! out (`via`); the tunnel's forward lives on the session of its active way. A server whose settings changed restarts its session
//! (and so every tunnel on it); on a server that stayed the same, tunnels are
//! added, removed or restarted one by one and the others are not disturbed.

use crate::config::{Config, Remote, Server, Target, Tunnel, Via};

/// The settings of one tunnel that matter to a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    /// The active way out.
    pub server: String,
    pub remote: Remote,
    pub target: Target,
    pub max_connections: u32,
    /// Every way out, in order of preference.
    pub ways: Vec<Via>,
}

impl Plan {
    /// Whether a running forward for `self` serves `other` as well (the list
    /// of other ways out does not matter to it).
    pub fn same_forward(&self, other: &Plan) -> bool {
        self.name == other.name
            && self.server == other.server
            && self.remote == other.remote
            && self.target == other.target
            && self.max_connections == other.max_connections
    }
}

/// One plan per tunnel, on the way out `active` picks (an index into its
/// `via` list; out of range means the first); a tunnel without a way out
/// (cannot happen after validation) is left out.
pub fn plans(config: &Config, active: impl Fn(&Tunnel) -> usize) -> Vec<Plan> {
    config
        .tunnels
        .iter()
        .filter_map(|t| {
            let via = t.via.get(active(t)).or(t.via.first())?;
            Some(Plan {
                name: t.name.clone(),
                server: via.server.clone(),
                remote: via.remote.clone(),
                target: t.target.clone(),
                max_connections: t.max_connections,
                ways: t.via.clone(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Sessions to end (server gone, unused, or changed).
    pub stop: Vec<String>,
    /// Sessions to start (server new, newly used, or changed), with all their tunnels.
    pub start: Vec<String>,
    /// (server, tunnel) added to a session that keeps running.
    pub add: Vec<(String, String)>,
    /// (server, tunnel) removed from a session that keeps running.
    pub remove: Vec<(String, String)>,
    /// (server, tunnel) whose forward is re-requested on a running session.
    pub restart: Vec<(String, String)>,
    /// Tunnels left alone.
    pub unchanged: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.stop.is_empty()
            && self.start.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.restart.is_empty()
    }
}

fn used<'a>(servers: &'a [Server], plans: &[Plan]) -> Vec<&'a Server> {
    servers
        .iter()
        .filter(|s| {
            plans
                .iter()
                .any(|p| p.server == s.name || p.ways.iter().any(|v| v.server == s.name))
        })
        .collect()
}

/// The changes that turn the running (`old`) set into the new one.
pub fn diff(old_servers: &[Server], old: &[Plan], new_servers: &[Server], new: &[Plan]) -> Diff {
    let mut d = Diff::default();
    let old_used = used(old_servers, old);
    let new_used = used(new_servers, new);
    for s in &old_used {
        match new_used.iter().find(|n| n.name == s.name) {
            None => d.stop.push(s.name.clone()),
            Some(n) if *n != *s => {
                d.stop.push(s.name.clone());
                d.start.push(s.name.clone());
            }
            Some(_) => {
                // Same server, same settings: compare its tunnels.
                let mine_old = old.iter().filter(|p| p.server == s.name);
                let mine_new: Vec<&Plan> = new.iter().filter(|p| p.server == s.name).collect();
                for p in mine_old {
                    match mine_new.iter().find(|n| n.name == p.name) {
                        None => d.remove.push((s.name.clone(), p.name.clone())),
                        Some(n) if !n.same_forward(p) => {
                            d.restart.push((s.name.clone(), p.name.clone()))
                        }
                        Some(_) => d.unchanged.push(p.name.clone()),
                    }
                }
                for n in &mine_new {
                    if !old.iter().any(|p| p.server == s.name && p.name == n.name) {
                        d.add.push((s.name.clone(), n.name.clone()));
                    }
                }
            }
        }
    }
    for n in &new_used {
        if !old_used.iter().any(|s| s.name == n.name) {
            d.start.push(n.name.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SessionMode, TargetHost};

    fn server(name: &str, port: u16) -> Server {
        Server {
            name: name.into(),
            host: format!("{name}.example"),
            port,
            user: "roadie".into(),
            identity: None,
            known_hosts: "/kh".into(),
            host_key: None,
            session: SessionMode::None,
            keepalive_s: 15,
            keepalive_max: 3,
        }
    }

    fn plan(name: &str, server: &str, port: u16, target_port: u16) -> Plan {
        Plan {
            name: name.into(),
            server: server.into(),
            remote: Remote {
                bind: name.into(),
                port,
                unix: None,
            },
            target: Target {
                host: TargetHost::Name("master".into()),
                port: target_port,
            },
            max_connections: 256,
            ways: vec![Via {
                server: server.into(),
                remote: Remote {
                    bind: name.into(),
                    port,
                    unix: None,
                },
            }],
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reload_table() {
        let a = server("a", 22);
        let a2 = server("a", 2222);
        let b = server("b", 22);
        let ui = plan("ui", "a", 80, 80);
        let ui_target = plan("ui", "a", 80, 8080);
        let ui_remote = plan("ui", "a", 81, 80);
        let ui_on_b = plan("ui", "b", 80, 80);
        let api = plan("api", "a", 443, 443);
        let mut ui_cap = ui.clone();
        ui_cap.max_connections = 10;
        // ui on a, with b standing by.
        let mut ui_ab = ui.clone();
        ui_ab.ways.push(Via {
            server: "b".into(),
            remote: ui.remote.clone(),
        });

        struct Case {
            name: &'static str,
            old: (Vec<Server>, Vec<Plan>),
            new: (Vec<Server>, Vec<Plan>),
            want: Diff,
        }
        let cases = vec![
            Case {
                name: "nothing changed",
                old: (vec![a.clone()], vec![ui.clone(), api.clone()]),
                new: (vec![a.clone()], vec![api.clone(), ui.clone()]),
                want: Diff {
                    unchanged: strs(&["ui", "api"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "from nothing",
                old: (vec![], vec![]),
                new: (vec![a.clone(), b.clone()], vec![ui.clone()]),
                want: Diff {
                    start: strs(&["a"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "to nothing",
                old: (vec![a.clone(), b.clone()], vec![ui.clone()]),
                new: (vec![], vec![]),
                want: Diff {
                    stop: strs(&["a"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "one tunnel's target changed, the other left alone",
                old: (vec![a.clone()], vec![ui.clone(), api.clone()]),
                new: (vec![a.clone()], vec![ui_target.clone(), api.clone()]),
                want: Diff {
                    restart: pairs(&[("a", "ui")]),
                    unchanged: strs(&["api"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "remote changed",
                old: (vec![a.clone()], vec![ui.clone()]),
                new: (vec![a.clone()], vec![ui_remote.clone()]),
                want: Diff {
                    restart: pairs(&[("a", "ui")]),
                    ..Diff::default()
                },
            },
            Case {
                name: "max_connections changed",
                old: (vec![a.clone()], vec![ui.clone()]),
                new: (vec![a.clone()], vec![ui_cap.clone()]),
                want: Diff {
                    restart: pairs(&[("a", "ui")]),
                    ..Diff::default()
                },
            },
            Case {
                name: "server settings changed restart its session",
                old: (vec![a.clone(), b.clone()], vec![ui.clone(), api.clone()]),
                new: (vec![a2.clone(), b.clone()], vec![ui.clone(), api.clone()]),
                want: Diff {
                    stop: strs(&["a"]),
                    start: strs(&["a"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "an unused server changing is nobody's business",
                old: (vec![a.clone(), b.clone()], vec![ui.clone()]),
                new: (vec![a.clone(), server("b", 2)], vec![ui.clone()]),
                want: Diff {
                    unchanged: strs(&["ui"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "tunnel added and removed on a running session",
                old: (vec![a.clone()], vec![ui.clone(), api.clone()]),
                new: (
                    vec![a.clone()],
                    vec![api.clone(), plan("web", "a", 8080, 80)],
                ),
                want: Diff {
                    remove: pairs(&[("a", "ui")]),
                    add: pairs(&[("a", "web")]),
                    unchanged: strs(&["api"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "tunnel moves to another server",
                old: (vec![a.clone(), b.clone()], vec![ui.clone(), api.clone()]),
                new: (
                    vec![a.clone(), b.clone()],
                    vec![ui_on_b.clone(), api.clone()],
                ),
                want: Diff {
                    remove: pairs(&[("a", "ui")]),
                    start: strs(&["b"]),
                    unchanged: strs(&["api"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "last tunnel leaves a server",
                old: (vec![a.clone(), b.clone()], vec![ui.clone()]),
                new: (vec![a.clone(), b.clone()], vec![ui_on_b.clone()]),
                want: Diff {
                    stop: strs(&["a"]),
                    start: strs(&["b"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "a second way out: its server's session starts, the forward stays",
                old: (vec![a.clone(), b.clone()], vec![ui.clone()]),
                new: (vec![a.clone(), b.clone()], vec![ui_ab.clone()]),
                want: Diff {
                    start: strs(&["b"]),
                    unchanged: strs(&["ui"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "a standby server's settings changed: only its session restarts",
                old: (vec![a.clone(), b.clone()], vec![ui_ab.clone()]),
                new: (vec![a.clone(), server("b", 2)], vec![ui_ab.clone()]),
                want: Diff {
                    stop: strs(&["b"]),
                    start: strs(&["b"]),
                    unchanged: strs(&["ui"]),
                    ..Diff::default()
                },
            },
            Case {
                name: "server renamed",
                old: (vec![a.clone()], vec![ui.clone()]),
                new: (vec![b.clone()], vec![ui_on_b.clone()]),
                want: Diff {
                    stop: strs(&["a"]),
                    start: strs(&["b"]),
                    ..Diff::default()
                },
            },
        ];
        for c in cases {
            let got = diff(&c.old.0, &c.old.1, &c.new.0, &c.new.1);
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(
                got.is_empty(),
                c.want.stop.is_empty()
                    && c.want.start.is_empty()
                    && c.want.add.is_empty()
                    && c.want.remove.is_empty()
                    && c.want.restart.is_empty()
            );
        }
    }

    #[test]
    fn plans_use_the_first_way_out() {
        let text = "[wan]\ninterfaces = [\"eth1\"]\n[lan]\ninterface = \"br-lan\"\naddress = \"192.168.1.1/24\"\n\
            [[server]]\nname = \"a\"\nhost = \"a.example\"\n[[server]]\nname = \"b\"\nhost = \"b.example\"\n\
            [[tunnel]]\nname = \"ui\"\ntarget = \"192.168.1.100:80\"\n\
            [[tunnel.via]]\nserver = \"b\"\nremote = \"ui:80\"\n[[tunnel.via]]\nserver = \"a\"\nremote = \"80\"\n";
        let c = crate::config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let p = plans(&c, |_| 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].server, "b");
        assert_eq!(p[0].remote.to_string(), "ui:80");
        assert_eq!(p[0].ways.len(), 2);
        let p = plans(&c, |_| 1);
        assert_eq!(p[0].server, "a");
        assert_eq!(p[0].remote.to_string(), "80");
        let p = plans(&c, |_| 7);
        assert_eq!(p[0].server, "b", "out of range: the first");
        // Both servers get a session: the second one stands by.
        let d = diff(&[], &[], &c.servers, &plans(&c, |_| 0));
        assert_eq!(d.start, strs(&["a", "b"]));
    }
}
