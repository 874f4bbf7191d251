package telegram

import (
	"regexp"
)

// botToken matches a Bot API token wherever it appears: the library puts it
// in every request URL, so a *url.Error from a failed call carries it.
var botToken = regexp.MustCompile(`[0-9]{3,}:[A-Za-z0-9_-]{20,}|bot[0-9]+:[A-Za-z0-9_-]+`)

// redactedError keeps the wrapped error for errors.Is/As but prints without
// the token.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr returns err with any bot token removed from its text.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: botToken.ReplaceAllString(err.Error(), "<token>"), err: err}
}
