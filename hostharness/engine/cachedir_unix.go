//go:build unix

package engine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// openDir opens the directory dir without following a link at its end.
func openDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, linkError(dir, unix.AT_FDCWD, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openDirAt opens the directory name in d without following a link.
func openDirAt(d *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, linkError(name, int(d.Fd()), err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openFileAt opens the regular file name in d for reading without
// following a link at its end.
func openFileAt(d *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: linkError(name, int(d.Fd()), err)}
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.Join(err, errors.New("not a regular file"))}
	}
	return f, nil
}

// linkError is err, or errLink when name in dirfd is a symbolic link
// (O_NOFOLLOW answers ELOOP, or ENOTDIR with O_DIRECTORY).
func linkError(name string, dirfd int, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return errLink
		}
	}
	return err
}

// privateFile checks that f (a directory when dir is set) is owned by
// this user and not writable by its group or others.
func privateFile(f *os.File, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	return private(&st, dir)
}

// privateEntry checks the entry name of d as privateFile does, without
// following a link (a link is refused), and reports whether it is a
// directory. Entries other than directories and regular files are
// refused too.
func privateEntry(d *os.File, name string) (isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return false, errLink
	case unix.S_IFDIR:
		return true, private(&st, true)
	case unix.S_IFREG:
		return false, private(&st, false)
	}
	return false, fmt.Errorf("neither a file nor a directory (mode %o)", st.Mode)
}

func private(st *unix.Stat_t, dir bool) error {
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if dir && !isDir {
		return errors.New("not a directory")
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not this user (uid %d)", st.Uid, uid)
	}
	if perm := st.Mode & 0o777; perm&0o022 != 0 {
		return fmt.Errorf("mode %04o lets others write to it", perm)
	}
	return nil
}

// readDirNames lists the names in the directory d.
func readDirNames(d *os.File) ([]string, error) {
	// A new descriptor of the same directory, so that d's offset stays.
	dup, err := openDirAt(d, ".")
	if err != nil {
		return nil, err
	}
	defer dup.Close()
	return dup.Readdirnames(-1)
}

// mkdirAt creates the directory name in d, mode 0700.
func mkdirAt(d *os.File, name string) error {
	if err := unix.Mkdirat(int(d.Fd()), name, 0o700); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// createTemp creates a new file in d, named after base, for writing.
func (c *CacheDir) createTemp(base string) (*os.File, string, error) {
	var b [8]byte
	rand.Read(b[:])
	name := base + "." + hex.EncodeToString(b[:]) + ".tmp"
	fd, err := unix.Openat(int(c.dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", &os.PathError{Op: "create", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), name, nil
}

// renameAt renames from to to, both in d.
func renameAt(d *os.File, from, to string) error {
	if err := unix.Renameat(int(d.Fd()), from, int(d.Fd()), to); err != nil {
		return &os.PathError{Op: "rename", Path: to, Err: err}
	}
	return nil
}

// removeAt removes the file name in d.
func removeAt(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// isReadOnly reports whether err says a file system or directory cannot
// be written.
func isReadOnly(err error) bool {
	return errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// isNoRoom reports whether err says a file system or quota is full.
func isNoRoom(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, unix.EFBIG)
}

// fdPath is the path of the open file f through /proc/self/fd, which
// leads to f itself (see CacheDir.Path).
func fdPath(f *os.File) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// tryLock takes an exclusive flock of d if no one else holds it.
func tryLock(d *os.File) (bool, error) {
	err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	case errors.Is(err, unix.EINTR):
		return false, nil
	}
	return false, err
}

// unlockDir releases tryLock's lock.
func unlockDir(d *os.File) { unix.Flock(int(d.Fd()), unix.LOCK_UN) }
