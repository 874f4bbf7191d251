package telegram_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

// failingReserve is a Coordinator whose next Reserve calls fail.
type failingReserve struct {
	telegram.Coordinator
	fail atomic.Int32
}

func (f *failingReserve) Reserve(ctx context.Context, s telegram.Slot) (time.Duration, bool, error) {
	if f.fail.Add(-1) >= 0 {
		return 0, false, errors.New("the database is away")
	}
	return f.Coordinator.Reserve(ctx, s)
}

// TestSharedBudgetLosesNothing: only messages book a slot (not the edit
// that reveals a record, its deletion or a button's answer); a booking
// that fails delays its message, in its place, and drops nothing.
func TestSharedBudgetLosesNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fake := tf.NewUnstarted(token, tf.Options{EnforceLimits: true})
		t.Cleanup(fake.Close)
		co := &tf.Coordinator{}
		log, logs := testLogger()
		var flaky *failingReserve
		startReplica(t, fake, releaser{}, co, nil, log, func(o *telegram.Options) {
			flaky = &failingReserve{Coordinator: o.Coordinator}
			o.Coordinator = flaky
		})
		advance(time.Second) // started, the command menu set
		flaky.fail.Store(3)
		user := int64(8101)
		for range 2 {
			fake.SendText(tf.Private(user), tf.User{ID: user, FirstName: "A"}, "show me")
		}
		if cs := assertAllDeletedOnTime(t, fake, user); len(cs) != 2 {
			t.Fatalf("copies: %+v", cs)
		}
		if st := co.Stats(); st.Booked != 2 {
			t.Fatalf("%d slots booked for two placeholders (edits and deletions book none): %+v", st.Booked, st)
		}
		if !strings.Contains(logs.String(), "send slot not booked; will retry") {
			t.Fatal("the failed bookings were not logged")
		}
		if st := fake.Stats(); st.Errors != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

// TestTooManyRequestsHoldsBackEveryReplica: after Telegram answers one
// replica 429 for a chat, another replica's message to that chat waits
// out retry_after too.
func TestTooManyRequestsHoldsBackEveryReplica(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co, eng := &tf.Coordinator{}, &echoer{}
		fake, rs, _ := webhookReplicas(t, 2, tf.Options{EnforceLimits: true}, co, eng)
		const retryAfter = 5 * time.Second
		fake.FailNext("sendMessage", 1, http.StatusTooManyRequests, int(retryAfter/time.Second))
		refused := time.Now()
		first := rs[0].postAsync(t, textUpdate(901, 8201, "one"))
		synctest.Wait() // refused, waiting to retry
		second := rs[1].postAsync(t, textUpdate(902, 8201, "two"))
		if a, b := <-first, <-second; a != http.StatusOK || b != http.StatusOK {
			t.Fatalf("answered %d and %d", a, b)
		}
		sent := fake.Sent(8201)
		if len(sent) != 2 || co.Stats().Backoffs != 1 {
			t.Fatalf("replies %+v, backoffs %d", sent, co.Stats().Backoffs)
		}
		for _, m := range sent {
			if m.Time.Sub(refused) < retryAfter {
				t.Fatalf("%q sent %v after the 429 with retry_after %v", m.Text, m.Time.Sub(refused), retryAfter)
			}
		}
		if st := fake.Stats(); st.TooMany429 != 1 {
			t.Fatalf("%+v", st)
		}
	})
}
