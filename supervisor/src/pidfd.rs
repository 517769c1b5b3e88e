//! A process file descriptor (Linux 5.3 and later): a handle on one process that stays
//! attached to it even after its pid is reused, and that can be watched for its exit
//! whether or not the process is our child. It is how a supervisor keeps processes an
//! earlier supervisor started.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registered with tokio when it is opened, so it must be opened inside the runtime.
#[derive(Debug)]
pub struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    pub fn open(pid: u32) -> std::io::Result<PidFd> {
        let pid = nix::libc::pid_t::try_from(pid)
            .map_err(|_| std::io::Error::from_raw_os_error(nix::libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
        // SAFETY: the kernel just made this descriptor (close-on-exec) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd stays open, and the same descriptor, for the AsyncFd's life.
        let watched = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(PidFd(watched))
    }

    pub fn send_signal(&self, signal: Signal) -> std::io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let result = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as nix::libc::c_int,
                std::ptr::null::<nix::libc::siginfo_t>(),
                0,
            )
        };
        if result < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the process has exited (the pidfd turns readable).
    pub async fn exited(&self) -> std::io::Result<()> {
        // Readable stays readable once the process is gone, so the guard is not cleared.
        let _ready = self.0.readable().await?;
        Ok(())
    }
}
