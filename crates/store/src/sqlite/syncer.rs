//! The WAL's fsync made beside the writer, and the callers answered after it.
//!
//! With `synchronous=FULL` the writer's COMMIT writes the batch's frames to the WAL and then
//! fsyncs it before it can take the next batch: the one thread every write waits for spent a
//! third or more of its time waiting for the disk, while the appends that arrived meanwhile
//! queued up behind it (docs/performance.md, "Syncs beside the writer"). Now the writer's
//! COMMIT hands the frames to the kernel and leaves the fsync owed (walvfs.rs); the writer
//! passes the batch's answers here and goes on with the next batch, and this thread fsyncs the
//! log and only then answers: one fsync for every batch that committed while the last one ran.
//!
//! What a caller is told is as before: a write is acknowledged only once its frames are on the
//! disk. What changes is when others see it: from its COMMIT, a fsync earlier than before. A
//! crash of the process loses nothing the kernel has; a crash of the machine can lose a commit
//! that others read and whose writer was never answered, never one that was answered. The log
//! stays consistent whatever crashes, as with SQLite's own `synchronous=NORMAL`: only the
//! commit's sync is owed (the checkpointer's hook makes its checkpoints' syncs itself, and
//! the database file's syncs are untouched).
//!
//! A failed fsync fails its callers and every write after it (the store then answers every
//! write with the error until restarted): after a failed fsync the kernel may have dropped the
//! pages it could not write, and a later fsync that succeeds says nothing about them.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::writer::WriteOut;
use crate::error::{Result, StoreError};

/// A batch's answers, given once the log is synced.
pub(super) type Answers = Vec<(oneshot::Sender<Result<WriteOut>>, Result<WriteOut>)>;

/// A batch the writer has run: its answers, and whether its commit's sync is owed. One that owes
/// none (it failed, or changed nothing) still waits behind those before it: its answer may
/// rest on what they wrote (an idempotent retry answered from a write not yet synced).
struct Batch {
    owed: bool,
    answers: Answers,
}

/// The thread that syncs the WAL and answers.
pub(super) struct Syncer {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for the database at `db` (its log is `{db}-wal`); `None` if it could
    /// not start, and the writer's commits then sync as SQLite does.
    pub fn start(db: PathBuf) -> Option<Syncer> {
        let mut wal = db.into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = mpsc::channel::<Batch>();
        let thread = std::thread::Builder::new()
            .name("confab-wal-sync".into())
            .spawn(move || serve(wal, rx))
            .map_err(|e| tracing::warn!(error = %e, "could not start the WAL's sync thread"))
            .ok()?;
        Some(Syncer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Answers `answers` once the log is synced (and every batch before them answered);
    /// `owed`: this batch's commit left its sync owed (`walvfs::take_owed`). Answers at once
    /// if the thread is gone (it ends only on a panic), with an error, since nothing synced.
    pub fn answer(&self, owed: bool, answers: Answers) {
        let sent = self.tx.as_ref().map(|tx| tx.send(Batch { owed, answers }));
        if let Some(Err(mpsc::SendError(b))) = sent {
            fail(b.answers, "the WAL's sync thread has stopped");
        }
    }
}

impl Drop for Syncer {
    /// Lets the thread answer what it holds and waits for it.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fail(answers: Answers, why: &str) {
    for (reply, _) in answers {
        let _ = reply.send(Err(StoreError::Commit(why.to_owned())));
    }
}

fn serve(wal: PathBuf, rx: mpsc::Receiver<Batch>) {
    let mut log: Option<File> = None;
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        // Every batch queued now committed before this sync starts: one fsync covers them all.
        let mut batches = vec![first];
        batches.extend(rx.try_iter());
        if failed.is_none()
            && batches.iter().any(|b| b.owed)
            && let Err(e) = sync(&wal, &mut log)
        {
            tracing::error!(error = %e, path = %wal.display(), "could not sync the WAL; every write fails from now on");
            failed = Some(format!("could not sync the write-ahead log: {e}"));
        }
        #[cfg(test)]
        tests::hold(&wal);
        for Batch { answers, .. } in batches {
            match &failed {
                Some(why) => fail(answers, why),
                None => {
                    for (reply, result) in answers {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }
}

/// fdatasync on the log, opened once and again if the file at its path is no longer the one
/// open (SQLite removes the log only when its last connection closes, but a stale descriptor
/// would sync nothing).
fn sync(wal: &std::path::Path, log: &mut Option<File>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::metadata(wal)?;
    let same = match log {
        Some(f) => f
            .metadata()
            .is_ok_and(|m| m.ino() == now.ino() && m.dev() == now.dev()),
        None => false,
    };
    if !same {
        *log = Some(File::open(wal)?);
    }
    #[cfg(test)]
    if tests::failing(wal) {
        return Err(std::io::Error::other("injected by a test"));
    }
    log.as_ref().expect("opened above").sync_data()?;
    #[cfg(test)]
    tests::synced(wal);
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    /// What a test asks of the syncer of one log (tests run side by side in one process).
    #[derive(Clone, Default)]
    pub struct Hook {
        pub wal: PathBuf,
        /// Milliseconds to wait after the sync before answering.
        pub hold_ms: u64,
        /// Every sync fails.
        pub fail: bool,
        /// Syncs made.
        pub syncs: u64,
    }

    pub static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

    fn with<T>(wal: &Path, f: impl FnOnce(&mut Hook) -> T) -> Option<T> {
        let mut h = HOOK.lock().unwrap();
        h.as_mut().filter(|h| h.wal == wal).map(f)
    }

    pub fn hold(wal: &Path) {
        if let Some(ms) = with(wal, |h| h.hold_ms) {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    pub fn failing(wal: &Path) -> bool {
        with(wal, |h| h.fail).unwrap_or(false)
    }

    pub fn synced(wal: &Path) {
        with(wal, |h| h.syncs += 1);
    }
}
