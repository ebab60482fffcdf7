#!/usr/bin/env python3
"""Where a profile's CPU went, by category.

Reads `perf script -F comm,pid,tid,ip,sym,dso` output of a recording with
call graphs (`perf record --call-graph dwarf`) on stdin. Each sample goes to
the category of the first frame, from the leaf up, that matches one of
RULES (memcpy and friends are skipped: they count for their caller), so
kernel time lands on what the process asked the kernel for (a send, an
fsync, a wait). Prints the share of samples per category; with --leaves,
the leaf symbols that most often landed in each.
"""
import collections
import re
import sys

RULES = [
    ("fsync", r"fdatasync|\bfsync\b|ext4_sync_file|jbd2|blkdev_issue_flush|file_write_and_wait"),
    ("disk write", r"ext4_file_write_iter|ext4_buffered_write|__x64_sys_pwrite|vfs_write\b"),
    ("net send", r"tcp_sendmsg|sock_write_iter|__sys_sendto|__sys_sendmsg|tcp_write_xmit|__tcp_push|do_writev"),
    ("net recv", r"tcp_recvmsg|sock_read_iter|__sys_recvfrom|tcp_v4_rcv|net_rx_action"),
    ("scheduling, wakeups", r"finish_task_switch|__schedule|schedule\b|futex|try_to_wake_up|epoll_wait|ep_poll"
     r"|sched_yield|syscall_exit_to_user_mode|irqentry_exit|_raw_spin_unlock_irqrestore|pthread_cond|__lll_lock"),
    ("TLS", r"rustls|aws_lc|ring::|aes_|sha256|chacha|gcm_"),
    ("malloc/free", r"^(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|unlink_chunk"
     r"|malloc_consolidate|__libc_malloc|__libc_free|__GI___libc_malloc|__GI___libc_free|tcache|alloc::raw_vec|__rust_alloc|__rust_dealloc|__rdl_)"),
    ("protobuf encode/decode", r"^prost::|as prost::Message|::encoded_len|::encode_raw|::merge_field|encode_varint|decode_varint"),
    ("bincode/serde (log entries)", r"bincode|serde_core|serde::"),
    ("RocksDB", r"rocksdb::|rocksdb_"),
    ("gRPC/HTTP2 (tonic, h2, hyper)", r"^h2::|<h2::|^hyper|<hyper|^tonic|<tonic|tower|http_body|hpack"),
    ("openraft", r"openraft::"),
    ("timon", r"timon_server|timon_proto|<timon"),
    ("tokio runtime", r"tokio::|mio::"),
]
SKIPPED = re.compile(r"memmove|memcpy|memcmp|memset|unknown|^\[|^0x")
RULES = [(name, re.compile(pattern)) for name, pattern in RULES]
FRAME = re.compile(r"\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")


def category(frames):
    for sym, _ in frames:
        if SKIPPED.search(sym):
            continue
        for name, rule in RULES:
            if rule.search(sym):
                return name
    if frames and "kernel" in frames[0][1]:
        return "kernel, other"
    return "other"


def samples(lines):
    frames, started = [], False
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if started:
                yield frames
            frames, started = [], False
        elif not line.startswith((" ", "\t")):
            if started:
                yield frames
            frames, started = [], True
        else:
            m = FRAME.match(line)
            if m:
                frames.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    if started:
        yield frames


def main():
    counts, leaves = collections.Counter(), collections.defaultdict(collections.Counter)
    for frames in samples(sys.stdin):
        c = category(frames)
        counts[c] += 1
        if frames:
            leaves[c][frames[0][0][:80]] += 1
    total = sum(counts.values()) or 1
    for c, n in counts.most_common():
        print(f"{100 * n / total:5.1f}%  {c}")
        if "--leaves" in sys.argv:
            for sym, k in leaves[c].most_common(5):
                print(f"         {100 * k / total:4.1f}%  {sym}")
    print(f"({total} samples)")


if __name__ == "__main__":
    main()
