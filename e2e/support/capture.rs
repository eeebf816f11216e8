//! A packet capture (tcpdump, whole packets) on one interface, for the tests that check what
//! crosses the pod network in cleartext: the real-MySQL tier's bridge and the real node's.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// tcpdump writing what matches its filter to a capture file until [`Capture::stop`].
pub struct Capture {
    child: Child,
    file: PathBuf,
}

/// A finished capture: the file and its bytes (the pcap headers and every packet whole).
pub struct Captured {
    pub file: PathBuf,
    pub bytes: Vec<u8>,
}

impl Capture {
    /// Starts capturing on `interface` what matches `filter` (a pcap filter expression, such as
    /// `tcp port 3306`) into `file`; returns once tcpdump listens.
    pub fn start(interface: &str, filter: &str, file: PathBuf) -> Capture {
        let child = Command::new("tcpdump")
            .args(["-i", interface, "-U", "-s", "0", "-w"])
            .arg(&file)
            .args(filter.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump runs (apt-get install tcpdump)");
        // tcpdump opens the interface asynchronously: wait for the file to exist.
        let started = Instant::now();
        while !file.exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        Capture { child, file }
    }

    /// Stops the capture (SIGINT: tcpdump flushes and exits); what it holds.
    pub fn stop(mut self) -> Captured {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).expect("the capture file");
        Captured {
            file: self.file,
            bytes,
        }
    }
}

impl Captured {
    /// The packets that match `filter` (tcpdump reading the file), as a capture file's bytes.
    pub fn select(&self, filter: &str) -> Vec<u8> {
        let out = self.file.with_extension("selected.pcap");
        let status = Command::new("tcpdump")
            .arg("-r")
            .arg(&self.file)
            .arg("-w")
            .arg(&out)
            .args(filter.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("tcpdump runs");
        assert!(status.success(), "tcpdump -r {:?} {filter}", self.file);
        let bytes = std::fs::read(&out).expect("the selected packets");
        let _ = std::fs::remove_file(&out);
        bytes
    }
}

/// `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
