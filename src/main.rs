//! roadie's entry point: parse arguments, then hand off to the library.

use roadie::cli::{self, Command};
use roadie::lastgood::{self, Start};
use tokio_util::sync::CancellationToken;

// The router builds (musl): src/packet_alloc.rs says why.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: roadie::packet_alloc::PacketAlloc<std::alloc::System> =
    roadie::packet_alloc::PacketAlloc::new(std::alloc::System);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roadie: {e}\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    let code = match &cli.command {
        Command::Help => {
            println!("{}", cli::USAGE);
            0
        }
        Command::Version => {
            println!("roadie {}", roadie::VERSION);
            0
        }
        Command::CheckConfig => cli::check_config(&cli),
        Command::Ingress(_) => cli::ingress(&cli),
        Command::Rpcd { .. } => cli::rpcd(&cli),
        Command::SuggestPrefix => cli::suggest_prefix(&cli),
        Command::AbsorbLease { .. } => cli::absorb_lease(&cli),
        Command::AbsorbRelease { .. } => cli::absorb_release(&cli),
        Command::Daemon { syslog } => daemon(&cli, syslog.clone()),
        _ => cli::run_client(&cli),
    };
    std::process::exit(code);
}

fn daemon(cli: &cli::Cli, syslog: Option<std::path::PathBuf>) -> i32 {
    let (mut config, problem) = match lastgood::load_for_start(&cli.config_path()) {
        Ok(Start::File(c)) => (c, None),
        Ok(Start::Copy { config, problem }) => (config, Some(problem)),
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some(s) = &cli.socket {
        config.daemon.socket = s.clone();
    }
    let level = cli.log_level.unwrap_or(config.daemon.log_level);
    roadie::logging::init(level, syslog.as_deref());
    if let Some(p) = &problem {
        log::error!("{p}");
    }
    // One thread: a router has one or two cores, and this is measured to cost less CPU.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roadie: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(async {
        // Packet buffers kept by the allocator go back once traffic stops.
        #[cfg(target_env = "musl")]
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                ALLOC.trim_if_idle();
            }
        });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                log::error!("cannot handle SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => log::info!("SIGTERM: stopping"),
                _ = int.recv() => log::info!("SIGINT: stopping"),
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        });
        match roadie::run(config, problem, cancel).await {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e}");
                eprintln!("roadie: {e}");
                1
            }
        }
    });
    // Do not wait for blocking threads: a name lookup (getaddrinfo) against a
    // resolver that does not answer can take many seconds, and SIGTERM must
    // end the process within 2 s.
    rt.shutdown_background();
    code
}
