//! Generates Rust types, tonic clients and tonic servers from the .proto
//! files under `proto/`. protoc comes from `protoc-bin-vendored`, so building
//! needs no system protobuf installation.

use std::path::PathBuf;

/// Every .proto file, relative to the `proto/` include root. Imports between
/// them use the same relative paths, so one include root resolves all of them.
const PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "timonpb/internal.proto",
    "timonpb/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The raft log and snapshots serialise these types with serde, so
        // every message, enum and oneof needs the derives.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_with_config(config, &files, &[root])?;
    Ok(())
}
