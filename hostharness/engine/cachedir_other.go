//go:build !unix

package engine

import (
	"errors"
	"os"
)

// errNoSafeOpen: without openat and O_NOFOLLOW a cache directory cannot
// be opened safely, so engines compile in memory.
var errNoSafeOpen = errors.New("a cache directory can be opened safely only on unix systems")

func openDir(string) (*os.File, error)                          { return nil, errNoSafeOpen }
func openDirAt(*os.File, string) (*os.File, error)              { return nil, errNoSafeOpen }
func openFileAt(*os.File, string) (*os.File, error)             { return nil, errNoSafeOpen }
func privateFile(*os.File, bool) error                          { return errNoSafeOpen }
func privateEntry(*os.File, string) (bool, error)               { return false, errNoSafeOpen }
func readDirNames(*os.File) ([]string, error)                   { return nil, errNoSafeOpen }
func mkdirAt(*os.File, string) error                            { return errNoSafeOpen }
func renameAt(*os.File, string, string) error                   { return errNoSafeOpen }
func removeAt(*os.File, string) error                           { return errNoSafeOpen }
func isReadOnly(error) bool                                     { return false }
func isNoRoom(error) bool                                       { return false }
func fdPath(*os.File) string                                    { return "" }
func (c *CacheDir) createTemp(string) (*os.File, string, error) { return nil, "", errNoSafeOpen }

// tryLock has nothing to lock: no cache directory opens here.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlockDir(*os.File) {}
