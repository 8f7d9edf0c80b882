//! The JSON-lines file sink with rotation by size and age.
//!
//! Lines are written whole, a batch at a time, and rotation happens only between batches: a
//! rotated file ends with a complete line and no line is split or lost. The live file keeps its
//! name (`calls.jsonl`); a rotated one is renamed with the UTC time of the rotation
//! (`calls.20261201T134501.123Z.jsonl`), so names sort by age and a search can skip files that end
//! before the range it looks at. Beyond `keep` rotated files, the oldest are deleted.
//!
//! Rotated or deleted by someone else (logrotate without `copytruncate`, an operator's `mv`): the
//! sink notices before its next write (the path no longer names the file it has open) and opens
//! a new one, as nginx does on `USR1`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::config::observe::FileSinkConfig;

pub struct FileSink {
    cfg: FileSinkConfig,
    file: Option<File>,
    /// Device and inode of the open file, to notice it was moved away.
    id: (u64, u64),
    size: u64,
    opened: Instant,
    pub rotations: u64,
}

/// The rotated siblings of the live file `path`, oldest first.
pub fn rotated(path: &Path) -> Vec<PathBuf> {
    let Some((dir, stem, ext)) = parts(path) else {
        return Vec::new();
    };
    let prefix = format!("{stem}.");
    let suffix = format!(".{ext}");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let mid = name.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
            // The stamp is digits, 'T', '.', 'Z' and an optional "-N" for a second rotation in
            // the same millisecond.
            mid.bytes()
                .all(|b| b.is_ascii_digit() || b"TZ.-".contains(&b))
                .then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

fn parts(path: &Path) -> Option<(PathBuf, String, String)> {
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), e.to_string()),
        _ => (name.to_string(), "log".to_string()),
    };
    Some((dir, stem, ext))
}

fn stamp(t: SystemTime) -> String {
    // 2026-12-01T13:45:01.123Z → 20261201T134501.123Z
    humantime::format_rfc3339_millis(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

impl FileSink {
    pub fn new(cfg: FileSinkConfig) -> FileSink {
        FileSink {
            cfg,
            file: None,
            id: (0, 0),
            size: 0,
            opened: Instant::now(),
            rotations: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.cfg.path)?;
            let m = f.metadata()?;
            self.size = m.len();
            self.id = (m.dev(), m.ino());
            self.opened = Instant::now();
            self.file = Some(f);
        }
        match self.file.as_mut() {
            Some(f) => Ok(f),
            None => Err(std::io::Error::other("file not open")),
        }
    }

    /// Writes whole lines; rotates first when they would take the file past its size, or when it
    /// is older than its age.
    pub fn write(&mut self, mut lines: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() {
            let still =
                std::fs::metadata(&self.cfg.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
            if !still {
                // Moved or deleted by someone else: the lines go to a new file at the path.
                self.file = None;
            }
        }
        while !lines.is_empty() {
            self.open()?;
            if self.due(0) {
                self.rotate()?;
                self.open()?;
            }
            // As many whole lines as fit under the size (at least one, into an empty file).
            let room = self.cfg.max_size.saturating_sub(self.size) as usize;
            let mut cut = match lines[..room.min(lines.len())]
                .iter()
                .rposition(|&b| b == b'\n')
            {
                Some(i) => i + 1,
                None => 0,
            };
            if cut == 0 {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                cut = lines
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(lines.len(), |i| i + 1);
            }
            let f = self.open()?;
            f.write_all(&lines[..cut])?;
            self.size += cut as u64;
            lines = &lines[cut..];
        }
        Ok(())
    }

    fn due(&self, more: u64) -> bool {
        self.size > 0
            && (self.size + more > self.cfg.max_size || self.opened.elapsed() >= self.cfg.max_age)
    }

    /// Rotates an old, non-empty file even when nothing is being written.
    pub fn tick(&mut self) -> std::io::Result<()> {
        if self.file.is_some() && self.due(0) {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_data()?;
        }
        let Some((dir, stem, ext)) = parts(&self.cfg.path) else {
            return Ok(());
        };
        let s = stamp(SystemTime::now());
        let mut to = dir.join(format!("{stem}.{s}.{ext}"));
        let mut n = 1;
        while to.exists() {
            to = dir.join(format!("{stem}.{s}-{n}.{ext}"));
            n += 1;
        }
        std::fs::rename(&self.cfg.path, &to)?;
        self.rotations += 1;
        let old = rotated(&self.cfg.path);
        if old.len() > self.cfg.keep {
            for p in &old[..old.len() - self.cfg.keep] {
                if let Err(e) = std::fs::remove_file(p) {
                    tracing::warn!(file = %p.display(), error = %e, "call log: cannot delete a rotated file");
                }
            }
        }
        self.size = 0;
        Ok(())
    }

    pub fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_file_moved_away_is_followed_by_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let mut s = FileSink::new(FileSinkConfig {
            path: path.clone(),
            max_size: 1 << 20,
            max_age: Duration::from_secs(3600),
            keep: 3,
        });
        s.write(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("calls.jsonl.1")).unwrap();
        s.write(b"two\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        s.write(b"three\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("calls.jsonl.1")).unwrap(),
            "one\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn rotation_keeps_whole_lines_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let mut s = FileSink::new(FileSinkConfig {
            path: path.clone(),
            max_size: 100,
            max_age: Duration::from_secs(3600),
            keep: 3,
        });
        let mut written = 0;
        for i in 0..50 {
            let line = format!("{{\"n\":{i:04}}}\n");
            s.write(line.as_bytes()).unwrap();
            written += 1;
        }
        let files = rotated(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        let mut lines = 0;
        for f in files.iter().chain([&path]) {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.ends_with('\n'));
            assert!(text.len() <= 100);
            lines += text.lines().count();
        }
        // Pruned files took some lines with them; what is left is the newest, in order.
        assert!(lines < written);
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.contains("\"n\":0049"));
        assert_eq!(s.rotations, 50 * 11 / 100);
    }
}
