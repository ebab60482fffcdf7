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

    // The descriptors of every message, for the JSON gateway (prost-reflect).
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("timon_descriptor.bin");
    let mut builder = tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .build_server(true)
        .build_client(true)
        // The raft log and snapshots serialise these types with serde, so
        // every message, enum and oneof needs the derives.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    // `bytes` fields are `Vec<u8>`, which serde writes byte by byte; as
    // serde_bytes they are one length and one copy. bincode's encoding is the
    // same either way (a u64 length, then the bytes), so logs and snapshots
    // written before read back unchanged.
    for file in &files {
        for path in bytes_fields(&std::fs::read_to_string(file)?) {
            builder = builder.field_attribute(path, "#[serde(with = \"serde_bytes\")]");
        }
    }
    builder.compile_with_config(config, &files, &[root])?;
    Ok(())
}

/// The protobuf paths (`.package.Message.field`) of every singular `bytes`
/// field of a .proto file, outside oneofs (a oneof's variants are enum
/// fields, which keep serde's default). Reads the subset of the grammar our
/// files use: one declaration per line, `message X {` blocks, nesting.
fn bytes_fields(proto: &str) -> Vec<String> {
    let mut package = String::new();
    // The open blocks: Some(message name) or None (oneof, enum, service).
    let mut blocks: Vec<Option<String>> = Vec::new();
    let mut out = Vec::new();
    for line in proto.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["package", name] = words.as_slice() {
            package = name.trim_end_matches(';').to_string();
        }
        let in_message = blocks.last().is_some_and(|b| b.is_some());
        if let ["bytes", field, "=", ..] = words.as_slice() {
            if in_message {
                let messages: Vec<&str> = blocks.iter().flatten().map(String::as_str).collect();
                out.push(format!(".{package}.{}.{field}", messages.join(".")));
            }
        }
        let message = match words.as_slice() {
            ["message", name, ..] => Some(name.to_string()),
            _ => None,
        };
        for k in 0..line.matches('{').count() {
            blocks.push(if k == 0 { message.clone() } else { None });
        }
        for _ in line.matches('}') {
            blocks.pop();
        }
    }
    out
}
