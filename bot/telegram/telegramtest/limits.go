package telegramtest

import "time"

// Telegram's flood limits for bots (core.telegram.org/bots/faq): about 30
// messages per second overall, one message per second to the same chat,
// 20 messages per minute to the same group. The fake applies the per-chat
// second to private chats (positive ids) and the per-minute limit to
// groups, supergroups and channels (negative ids), all as sliding windows
// shortened by Options.Slack.
const (
	globalLimit   = 30
	globalWindow  = time.Second
	privateWindow = time.Second
	groupLimit    = 20
	groupWindow   = time.Minute
)

// admitLocked decides whether a message send to cs at now breaks a limit.
// A violation answers 429 with retry_after = whole seconds until the send
// would be allowed, and is neither performed nor counted against later
// sends; an admitted send is counted.
func (s *Server) admitLocked(cs *chatState, now time.Time) *apiError {
	if !s.opts.EnforceLimits {
		return nil
	}
	slack := s.opts.Slack
	var wait time.Duration
	violated := false

	gw := globalWindow - slack
	s.globalSends = pruneUpTo(s.globalSends, now.Add(-gw))
	if n := len(s.globalSends); n >= globalLimit {
		violated = true
		s.stats.LimitGlobal++
		wait = max(wait, s.globalSends[n-globalLimit].Add(gw).Sub(now))
	}
	switch {
	case cs.chat.ID > 0:
		pw := privateWindow - slack
		if el := now.Sub(cs.lastSend); !cs.lastSend.IsZero() && el < pw {
			violated = true
			s.stats.LimitChat++
			wait = max(wait, pw-el)
		}
	case cs.chat.ID < 0:
		w := groupWindow - slack
		cs.groupSends = pruneUpTo(cs.groupSends, now.Add(-w))
		if n := len(cs.groupSends); n >= groupLimit {
			violated = true
			s.stats.LimitGroup++
			wait = max(wait, cs.groupSends[n-groupLimit].Add(w).Sub(now))
		}
	}
	if violated {
		return tooMany(ceilSeconds(wait))
	}

	s.globalSends = append(s.globalSends, now)
	if cs.chat.ID > 0 {
		cs.lastSend = now
	} else {
		cs.groupSends = append(cs.groupSends, now)
	}
	return nil
}

// pruneUpTo drops the leading times not after cutoff: they have left the
// window (cutoff, now].
func pruneUpTo(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cutoff) {
		i++
	}
	if i == len(ts) {
		return ts[:0]
	}
	return ts[i:]
}

// ceilSeconds rounds a wait up to whole seconds, at least one, as
// Telegram's retry_after is.
func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
