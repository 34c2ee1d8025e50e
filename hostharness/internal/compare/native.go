package compare

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Native is the echo guest built for the host, running as its own process:
// the reference every wasm target is compared with.
type Native struct {
	// Addr is the address the process reported it listens on.
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	tail strings.Builder
}

// servingLine matches the guest's startup log line and captures its address.
var servingLine = regexp.MustCompile(`msg="echo guest serving".* addr=(\S+)`)

// StartNative runs the native guest binary bin on 127.0.0.1:0 with exactly
// the environment env (the same as the wasm targets get) and returns once
// it has logged the address it serves on.
func StartNative(ctx context.Context, bin string, env []string) (*Native, error) {
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0")
	cmd.Env = append([]string{}, env...)
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("native guest %s: %w", bin, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("native guest %s: %w", bin, err)
	}
	n := &Native{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := servingLine.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
			if n.tail.Len() < 64<<10 {
				n.tail.WriteString(line + "\n")
			}
		}
		io.Copy(io.Discard, stderr)
		n.err = cmd.Wait()
		close(n.done)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case n.Addr = <-addrc:
		return n, nil
	case <-n.done:
		return nil, fmt.Errorf("native guest %s exited before serving: %v\n%s", bin, n.err, n.tail.String())
	case <-timer.C:
		n.Stop()
		return nil, fmt.Errorf("native guest %s: no %q log line within 30s", bin, "echo guest serving")
	case <-ctx.Done():
		n.Stop()
		return nil, fmt.Errorf("native guest %s: %w", bin, ctx.Err())
	}
}

// Stop asks the process to shut down (SIGTERM, as the guest drains on it)
// and waits for it.
func (n *Native) Stop() error {
	select {
	case <-n.done:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		<-n.done
	}
	if n.err != nil {
		if exit, ok := n.err.(*exec.ExitError); ok && exit.ExitCode() == -1 {
			return nil // ended by the signal before the guest's handler ran
		}
		return fmt.Errorf("native guest: %w", n.err)
	}
	return nil
}
