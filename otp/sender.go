package otp

import (
	"context"
	"errors"

	"github.com/otpgate/otpgate/pii"
)

// Sender delivers one SMS. Implementations must be safe for concurrent use,
// must never log the number (beyond its masked form) or the body, and must
// return promptly when ctx is done. An error that wraps ErrPermanent means
// retrying the same message cannot succeed (invalid or unsubscribed number,
// bad credentials); any other error may be retried.
type Sender interface {
	Send(ctx context.Context, to pii.Mobile, body string) error
}

// Errors a Sender reports, wrapped with detail (never the number or body).
var (
	ErrPermanent    = errors.New("sms: permanent failure")
	ErrInvalidTo    = errors.New("sms: invalid destination number")
	ErrUnsubscribed = errors.New("sms: recipient unsubscribed")
	ErrUnroutable   = errors.New("sms: destination unreachable or not SMS-capable")
	ErrAuth         = errors.New("sms: provider rejected the credentials")
	ErrRateLimited  = errors.New("sms: provider rate limit")
	ErrProvider     = errors.New("sms: provider error")
)
