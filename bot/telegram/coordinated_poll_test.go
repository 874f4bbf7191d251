package telegram_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

// pollLease is the adapter's polling lease: a standby polls within it of
// the leader's last renewal.
const pollLease = 10 * time.Second

// pollingPair runs two coordinated Bots in polling mode and returns the
// one that polls first, then the other.
func pollingPair(t *testing.T, fake *tf.Server, eng *echoer) (leader, standby *replica, logs *lockedBuf) {
	t.Helper()
	co := &tf.Coordinator{}
	log, logs := testLogger()
	a := startReplica(t, fake, eng, co, nil, log, nil)
	b := startReplica(t, fake, eng, co, nil, log, nil)
	advance(time.Minute)
	leader, standby = a, b
	if b.gate.count("getUpdates") > 0 {
		leader, standby = b, a
	}
	if leader.gate.count("getUpdates") == 0 || standby.gate.count("getUpdates") != 0 {
		t.Fatalf("getUpdates calls: %d and %d; want one replica polling", a.gate.count("getUpdates"), b.gate.count("getUpdates"))
	}
	return leader, standby, logs
}

func TestPollingStandbyTakesOver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(*replica)
	}{
		{"the leader stops", func(r *replica) { _ = r.stop() }},
		{"the leader is cut off from the coordinator", func(r *replica) { r.conn.SetDown(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fake := tf.NewUnstarted(token, tf.Options{})
				t.Cleanup(fake.Close)
				eng := &echoer{}
				leader, standby, logs := pollingPair(t, fake, eng)
				chat, from := tf.Private(7801), tf.User{ID: 7801, FirstName: "P"}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				fake.SendText(chat, from, "one")
				if _, err := fake.WaitSent(ctx, 7801, 1); err != nil {
					t.Fatal(err)
				}

				ended := time.Now()
				tc.end(leader)
				wctx, wcancel := context.WithTimeout(context.Background(), pollLease)
				defer wcancel()
				if err := fake.WaitFor(wctx, func() bool { return standby.gate.count("getUpdates") > 0 }); err != nil {
					t.Fatalf("the standby did not poll within the lease: %v", err)
				}
				t.Logf("the standby polls %v after the leader went", time.Since(ended))
				polls := leader.gate.count("getUpdates")
				advance(time.Minute)
				if n := leader.gate.count("getUpdates"); n != polls {
					t.Fatalf("the old leader polled %d more times once the standby led", n-polls)
				}
				fake.SendText(chat, from, "two")
				ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				sent, err := fake.WaitSent(ctx, 7801, 2)
				if err != nil {
					t.Fatal(err)
				}
				if len(sent) != 2 || sent[1].Text != "re: two" || eng.count(7801) != 2 {
					t.Fatalf("replies %+v, %d updates handled", sent, eng.count(7801))
				}
				if st := fake.Stats(); st.Errors != 0 {
					t.Fatalf("calls refused (409 for two pollers?): %+v", st)
				}
				if strings.Contains(logs.String(), "re: ") {
					t.Fatal("a reply was logged")
				}
			})
		})
	}
}

// TestPollingHandoverHandlesNothingTwice: a leader is cut off while it
// handles an update it had not confirmed; the new leader is given the
// update again and waits while the old one holds it, then skips it once
// it is done.
func TestPollingHandoverHandlesNothingTwice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fake := tf.NewUnstarted(token, tf.Options{})
		t.Cleanup(fake.Close)
		eng := &echoer{}
		leader, standby, _ := pollingPair(t, fake, eng)
		chat, from := tf.Private(7901), tf.User{ID: 7901, FirstName: "P"}

		// The poll in flight takes the update; the next, which would
		// confirm it, and the reply are held.
		leader.gate.hold("getUpdates")
		leader.gate.hold("sendMessage")
		fake.SendText(chat, from, "one")
		synctest.Wait()
		if eng.count(7901) != 1 {
			t.Fatal("the leader did not take the update")
		}
		leader.conn.SetDown(true)
		advance(pollLease + 5*time.Second)
		if standby.gate.count("getUpdates") == 0 || fake.Pending() != 1 {
			t.Fatalf("the standby polls: %v, unconfirmed updates %d", standby.gate.count("getUpdates") > 0, fake.Pending())
		}
		if eng.count(7901) != 1 {
			t.Fatal("the new leader handled an update the old one holds")
		}
		// The old leader gets through: its reply goes and it marks the
		// update done. The new leader confirms it and goes on.
		leader.conn.SetDown(false)
		leader.gate.release("sendMessage")
		leader.gate.release("getUpdates")
		fake.SendText(chat, from, "two")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sent, err := fake.WaitSent(ctx, 7901, 2)
		if err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
		if got := fake.Sent(7901); len(got) != 2 || sent[0].Text != "re: one" || sent[1].Text != "re: two" || eng.count(7901) != 2 {
			t.Fatalf("replies %+v; %d updates handled", got, eng.count(7901))
		}
		if fake.Pending() != 0 {
			t.Fatalf("%d updates unconfirmed", fake.Pending())
		}
	})
}
