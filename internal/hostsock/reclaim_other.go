//go:build !linux

package hostsock

func backlog(int) int { return 0 }
func unread(int) int  { return -1 }
func unsent(int) int  { return -1 }
