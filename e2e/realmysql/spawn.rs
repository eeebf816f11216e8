//! Starts one container process the way a container runtime would, with plain Linux calls in the
//! forked child: join the member's network namespace, a private mount and UTS namespace, the
//! shared root filesystem bound onto itself (read-only when the spec says so) with the
//! container's volumes bound on top, `chroot`, then the spec's user and groups. The process is
//! the leader of its own process group, so a signal can reach the whole container.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::pod::ContainerPlan;

/// Where the member's state directory is bound inside the root while the mounts are made.
const STAGING: &str = "/.iop-pod";

/// What every container of one member shares.
pub struct Sandbox<'a> {
    pub rootfs: &'a Path,
    /// Holds every volume source and the hosts file.
    pub state: &'a Path,
    pub netns: &'a File,
    pub hostname: &'a str,
    pub hosts_file: &'a Path,
    pub resolv_file: &'a Path,
}

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref()).expect("no NUL in paths")
}

/// One mount done inside the root, after `chroot`.
struct InnerMount {
    source: CString,
    target: CString,
    /// Directories to create first (`mkdir -p` of the target or its parent).
    dirs: Vec<CString>,
    /// The target is a file (bind of a file over a file).
    file: bool,
    read_only: bool,
}

fn prefixes(path: &str) -> Vec<CString> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        acc.push('/');
        acc.push_str(part);
        out.push(cstr(&acc));
    }
    out
}

fn inner_mount(
    state: &Path,
    source: &Path,
    target: &str,
    read_only: bool,
) -> io::Result<InnerMount> {
    let rel = source.strip_prefix(state).map_err(|_| {
        io::Error::other(format!(
            "{} is outside {}",
            source.display(),
            state.display()
        ))
    })?;
    let file = source.is_file();
    let mut dirs = prefixes(target);
    if file {
        dirs.pop();
    }
    Ok(InnerMount {
        source: cstr(Path::new(STAGING).join(rel).as_os_str().as_bytes()),
        target: cstr(target),
        dirs,
        file,
        read_only,
    })
}

/// The executable `name` resolves to inside `rootfs` with the container's `PATH`.
fn resolve(rootfs: &Path, name: &str, env: &[(String, String)]) -> io::Result<String> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    path.split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| {
            rootfs
                .join(p.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        })
        .ok_or_else(|| io::Error::other(format!("{name} not found in the root filesystem")))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn bind(source: &CString, target: &CString, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: valid NUL-terminated strings; mount has no memory effects on this process.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | flags,
            std::ptr::null(),
        )
    })
}

fn remount_read_only(target: &CString) -> io::Result<()> {
    // SAFETY: as above.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        )
    })
}

/// Starts `plan` in the sandbox, its stdout and stderr appended to `log`.
pub fn spawn(plan: &ContainerPlan, sandbox: &Sandbox, log: &File) -> io::Result<Child> {
    let program = resolve(sandbox.rootfs, &plan.argv[0], &plan.env)?;
    let root = cstr(sandbox.rootfs.as_os_str().as_bytes());
    let staging_host = cstr(
        sandbox
            .rootfs
            .join(STAGING.trim_start_matches('/'))
            .as_os_str()
            .as_bytes(),
    );
    std::fs::create_dir_all(sandbox.rootfs.join(STAGING.trim_start_matches('/')))?;
    let state = cstr(sandbox.state.as_os_str().as_bytes());
    let kernel_fs: Vec<(CString, CString)> = ["proc", "sys", "dev"]
        .iter()
        .map(|d| {
            (
                cstr(format!("/{d}")),
                cstr(sandbox.rootfs.join(d).as_os_str().as_bytes()),
            )
        })
        .collect();
    let mut mounts = vec![
        inner_mount(sandbox.state, sandbox.hosts_file, "/etc/hosts", true)?,
        inner_mount(sandbox.state, sandbox.resolv_file, "/etc/resolv.conf", true)?,
    ];
    for m in &plan.mounts {
        if !m.source.exists() {
            return Err(io::Error::other(format!(
                "volume source {} is missing",
                m.source.display()
            )));
        }
        mounts.push(inner_mount(
            sandbox.state,
            &m.source,
            &m.target,
            m.read_only,
        )?);
    }
    let staging = cstr(STAGING);
    let slash = cstr("/");
    let hostname = sandbox.hostname.as_bytes().to_vec();
    let netns = sandbox.netns.as_raw_fd();
    let read_only_root = plan.read_only_root;
    let (uid, gid) = (plan.uid, plan.gid);
    let groups: Vec<libc::gid_t> = plan.groups.clone();

    let mut cmd = Command::new(&program);
    cmd.args(&plan.argv[1..])
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0);
    let setup = move || -> io::Result<()> {
        // SAFETY: only system calls on data prepared before the fork; no allocation.
        unsafe {
            check(libc::setns(netns, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            check(libc::sethostname(hostname.as_ptr().cast(), hostname.len()))?;
            check(libc::mount(
                std::ptr::null(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
        }
        bind(&root, &root, 0)?;
        for (host, inside) in &kernel_fs {
            bind(host, inside, libc::MS_REC)?;
        }
        bind(&state, &staging_host, 0)?;
        // SAFETY: as above.
        unsafe {
            check(libc::chroot(root.as_ptr()))?;
            check(libc::chdir(slash.as_ptr()))?;
        }
        for m in &mounts {
            for d in &m.dirs {
                // SAFETY: as above; EEXIST is expected.
                unsafe { libc::mkdir(d.as_ptr(), 0o755) };
            }
            if m.file {
                // SAFETY: as above.
                let fd =
                    unsafe { libc::open(m.target.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
                if fd >= 0 {
                    // SAFETY: fd was just opened.
                    unsafe { libc::close(fd) };
                }
            }
            bind(&m.source, &m.target, 0)?;
            if m.read_only {
                remount_read_only(&m.target)?;
            }
        }
        // SAFETY: as above.
        unsafe { check(libc::umount2(staging.as_ptr(), libc::MNT_DETACH))? };
        if read_only_root {
            remount_read_only(&slash)?;
        }
        // SAFETY: as above.
        unsafe {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
        }
        Ok(())
    };
    // SAFETY: the closure makes only async-signal-safe system calls.
    unsafe { cmd.pre_exec(setup) };
    cmd.spawn()
}

/// The path of a member's log of `container`.
pub fn log_path(logs: &Path, container: &str) -> PathBuf {
    logs.join(format!("{container}.log"))
}
