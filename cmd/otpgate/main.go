// Command otpgate is a Telegram (and terminal) front end over an encrypted
// records store that releases a beneficiary's vaccination record only after
// a one-time code sent by SMS to the record's registered mobile is typed
// back. Run `otpgate help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()})
	stop()
	os.Exit(code)
}
