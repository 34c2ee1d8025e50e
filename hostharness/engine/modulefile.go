package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxModuleSize bounds the guest module file an engine reads.
const MaxModuleSize = 512 << 20

// CheckModuleFile checks the guest module file at path as ReadModule
// does, without reading it: a regular file (after symlinks) of at most
// MaxModuleSize. Opening it cannot block, not even on a FIFO.
func CheckModuleFile(path string) error {
	f, _, err := openModule(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// ReadModule reads the guest module file at path, with the checks of
// CheckModuleFile made on the opened descriptor (so that what is read is
// what was checked) and the read bounded by MaxModuleSize even if the file
// grows meanwhile. It returns when ctx is done, leaving the read (of a
// regular file, which ends) to finish by itself.
func ReadModule(ctx context.Context, path string) ([]byte, error) {
	f, size, err := openModule(path)
	if err != nil {
		return nil, err
	}
	type result struct {
		wasm []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		var buf bytes.Buffer
		buf.Grow(int(size) + bytes.MinRead)
		_, err := buf.ReadFrom(io.LimitReader(f, MaxModuleSize+1))
		switch {
		case err != nil:
			err = fmt.Errorf("read %s: %w", path, err)
		case buf.Len() > MaxModuleSize:
			err = fmt.Errorf("%s: it grew past the %d MiB a guest may be while it was read", path, MaxModuleSize>>20)
		}
		done <- result{buf.Bytes(), err}
	}()
	select {
	case r := <-done:
		return r.wasm, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("read %s: %w", path, context.Cause(ctx))
	}
}

// openModule opens the module file at path without blocking and checks
// the opened file: a regular file of at most MaxModuleSize, whose size it
// returns.
func openModule(path string) (*os.File, int64, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if err := checkModuleStat(path, st); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// checkModuleStat is CheckModuleFile's verdict on a file's metadata.
func checkModuleStat(path string, st fs.FileInfo) error {
	switch {
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file (%s)", path, fileKind(st.Mode()))
	case st.Size() > MaxModuleSize:
		return fmt.Errorf("%s: %d MiB, more than the %d MiB a guest may be", path, st.Size()>>20, MaxModuleSize>>20)
	}
	return nil
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "type " + m.Type().String()
}
