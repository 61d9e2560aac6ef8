//! Runs a node from a configuration file on a chosen runtime flavour, for measurements:
//! `cargo run --release -p edgeguard-proxy --example serve -- FILE [current|multi]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: serve FILE [current|multi]");
    let flavour = args.next().unwrap_or_else(|| "multi".into());
    let config = edgeguard_config::load(std::path::Path::new(&path)).expect("valid configuration");
    let rt = if flavour == "current" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async {
        let node = edgeguard_proxy::Node::start(config)
            .await
            .expect("node starts");
        eprintln!("serving on {:?}", node.local_addrs());
        std::future::pending::<()>().await;
    });
}
