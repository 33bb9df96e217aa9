//! What the file system under a store can do when several machines use it: the Slurm executor's
//! shared store (`store-layout/slurm.md`).
//!
//! Two things matter. SQLite's write-ahead log keeps its index in shared memory, which only the
//! processes of one machine share: on a file system that machines share, the database must use
//! the rollback journal. And `flock` must lock across machines: an NFS mount with `nolock` or
//! `local_lock=flock|all`, or Lustre without `flock`, locks only on the machine that takes the
//! lock, so two jobs would build one path at once.

use std::path::Path;

/// A file system that several machines mount, by its `statfs` magic number.
pub fn network_fs_name(magic: u64) -> Option<&'static str> {
    Some(match magic & 0xffff_ffff {
        0x6969 => "nfs",
        0x517b => "smb",
        0xff53_4d42 => "cifs",
        0xfe53_4d42 => "smb2",
        0x0bd0_0bd0 => "lustre",
        0x4750_4653 => "gpfs",
        0x00c3_6400 => "ceph",
        0x1983_0326 => "beegfs",
        0x0102_1997 => "9p",
        0x5346_414f => "afs",
        0x7461_636f => "ocfs2",
        0x0116_1970 => "gfs2",
        _ => return None,
    })
}

/// The shared file system `dir` is on, if any; `FORGE_STORE_SHARED=1` declares one that is
/// not recognized (a FUSE file system machines share).
pub fn shared_fs(dir: &Path) -> Option<String> {
    if std::env::var("FORGE_STORE_SHARED").is_ok_and(|v| v == "1") {
        return Some("declared shared (FORGE_STORE_SHARED=1)".to_owned());
    }
    let st = rustix::fs::statfs(dir).ok()?;
    #[allow(clippy::unnecessary_cast)]
    network_fs_name(st.f_type as u64).map(str::to_owned)
}

/// One line of `/proc/self/mountinfo`: the mount point, the file system type and its options
/// (per-mount and super-block, joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: String,
    /// `nfs4`, `lustre`, `ext4`, ….
    pub fstype: String,
    /// Its options.
    pub options: Vec<String>,
}

/// Parses `/proc/self/mountinfo` (`man 5 proc`): fields 5 and 6 are the mount point and its
/// options; after the ` - ` separator, the type, the source and the super-block options.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let point = unescape(left.get(4)?);
            let mut options: Vec<String> = left.get(5)?.split(',').map(str::to_owned).collect();
            options.extend(right.get(2).unwrap_or(&"").split(',').map(str::to_owned));
            Some(Mount {
                point,
                fstype: (*right.first()?).to_owned(),
                options,
            })
        })
        .collect()
}

/// Octal escapes of mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1..i + 4)
                .is_some_and(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` (absolute, resolved) is on: the longest mount point above it.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.len())
}

/// Why `flock` on this mount does not lock across machines, if it does not.
pub fn locks_not_shared(m: &Mount) -> Option<String> {
    let has = |o: &str| m.options.iter().any(|x| x == o);
    if m.fstype.starts_with("nfs") {
        if has("nolock") {
            return Some(format!(
                "`{}` is NFS mounted with `nolock`: locks are not shared between machines",
                m.point
            ));
        }
        if let Some(o) = m
            .options
            .iter()
            .find(|o| o.starts_with("local_lock=") && *o != "local_lock=none")
        {
            return Some(format!(
                "`{}` is NFS mounted with `{o}`: those locks (flock for the build locks, POSIX \
                 for the database) stay on each machine",
                m.point
            ));
        }
    }
    if m.fstype == "lustre" && !has("flock") {
        return Some(format!(
            "`{}` is Lustre mounted without `flock`{}: flock locks are not shared between machines",
            m.point,
            if has("localflock") {
                " (with `localflock`)"
            } else {
                ""
            }
        ));
    }
    None
}

/// Checks that the store at `root` can be shared by jobs on several machines: an error says
/// why not and what to change.
pub fn check_shared_store(root: &Path) -> Result<(), String> {
    let root = fs_err::canonicalize(root).map_err(|e| e.to_string())?;
    let Ok(text) = fs_err::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let mounts = parse_mountinfo(&text);
    match mount_of(&mounts, &root).and_then(locks_not_shared) {
        Some(why) => Err(format!(
            "the store {} cannot be shared by Slurm jobs: {why}; remount it with working locks \
             (NFS: without `nolock`/`local_lock`; Lustre: `-o flock`), or put the store on a \
             file system that has them",
            root.display()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /shared rw,relatime shared:20 - nfs4 srv:/export rw,vers=4.2,hard,proto=tcp,local_lock=none
41 22 0:51 / /scratch rw,relatime shared:21 - nfs srv:/scratch rw,vers=3,nolock,proto=tcp
42 22 0:52 / /lus rw shared:22 - lustre 10.0.0.1@tcp:/fs rw,localflock
43 22 0:53 / /lus2 rw shared:23 - lustre 10.0.0.1@tcp:/fs rw,flock
44 22 0:54 / /my\\040dir rw shared:24 - nfs4 srv:/x rw,local_lock=flock
45 22 0:55 / /px rw shared:25 - nfs4 srv:/p rw,local_lock=posix
";

    #[test]
    fn the_mount_under_a_path_is_the_longest_prefix() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 7);
        assert_eq!(
            mount_of(&m, Path::new("/shared/store")).unwrap().fstype,
            "nfs4"
        );
        assert_eq!(mount_of(&m, Path::new("/sharedx")).unwrap().point, "/");
        assert_eq!(
            mount_of(&m, Path::new("/my dir/s")).unwrap().point,
            "/my dir"
        );
    }

    #[test]
    fn mounts_whose_locks_stay_on_one_machine_are_named() {
        let m = parse_mountinfo(MOUNTINFO);
        let why = |p: &str| locks_not_shared(mount_of(&m, Path::new(p)).unwrap());
        assert_eq!(why("/shared/store"), None);
        assert!(why("/scratch/s").unwrap().contains("`nolock`"));
        assert!(
            why("/lus/s")
                .unwrap()
                .contains("without `flock` (with `localflock`)")
        );
        assert_eq!(why("/lus2/s"), None);
        assert!(why("/my dir/s").unwrap().contains("`local_lock=flock`"));
        assert!(why("/px/s").unwrap().contains("`local_lock=posix`"));
        assert_eq!(why("/home"), None);
    }

    #[test]
    fn network_file_systems_are_known_by_their_magic() {
        assert_eq!(network_fs_name(0x6969), Some("nfs"));
        assert_eq!(network_fs_name(0x0bd0_0bd0), Some("lustre"));
        // Sign-extended, as a 32-bit `long` would give it.
        assert_eq!(network_fs_name(0xffff_ffff_ff53_4d42), Some("cifs"));
        assert_eq!(network_fs_name(0xef53), None); // ext4
    }
}
