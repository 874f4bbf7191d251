package telegram_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

func newListener(t *testing.T) *tf.Listener {
	ln := tf.NewListener()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// webhookReplicas runs n coordinated (co not nil) or independent Bots in
// webhook mode over one fake, which delivers through a balancer.
func webhookReplicas(t *testing.T, n int, fakeOpts tf.Options, co *tf.Coordinator, eng bot.Handler) (*tf.Server, []*replica, *lockedBuf) {
	t.Helper()
	lns := make([]*tf.Listener, n)
	for i := range lns {
		lns[i] = newListener(t)
	}
	fakeOpts.WebhookClient = balancer(lns...)
	fake := tf.NewUnstarted(token, fakeOpts)
	t.Cleanup(fake.Close)
	log, logs := testLogger()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = startReplica(t, fake, eng, co, lns[i], log, nil)
	}
	return fake, rs, logs
}

func TestWebhookReplicasHandleAnUpdateOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co, eng := &tf.Coordinator{}, &echoer{}
		fake, rs, _ := webhookReplicas(t, 2, tf.Options{EnforceLimits: true}, co, eng)
		a, b := rs[0], rs[1]

		// One after the other: the second replica acknowledges, and does
		// nothing else.
		u := textUpdate(101, 7101, "hello")
		if st := a.post(t, u); st != http.StatusOK {
			t.Fatalf("first delivery: %d", st)
		}
		if st := b.post(t, u); st != http.StatusOK {
			t.Fatalf("second delivery, to another replica: %d", st)
		}

		// At once: while the first replica is at it, the second answers
		// 503, and Telegram's next try finds it done.
		a.gate.hold("sendMessage")
		u = textUpdate(102, 7102, "again")
		first := a.postAsync(t, u)
		synctest.Wait()
		if st := b.post(t, u); st != http.StatusServiceUnavailable {
			t.Fatalf("delivered to a second replica while the first holds it: %d, want 503", st)
		}
		a.gate.release("sendMessage")
		if st := <-first; st != http.StatusOK {
			t.Fatalf("first delivery: %d", st)
		}
		if st := b.post(t, u); st != http.StatusOK {
			t.Fatalf("Telegram's retry: %d", st)
		}

		advance(time.Minute) // anything more the replicas would say has been said
		for _, chat := range []int64{7101, 7102} {
			if n, sent := eng.count(chat), len(fake.Sent(chat)); n != 1 || sent != 1 {
				t.Errorf("chat %d: handled %d times, %d replies; want one of each", chat, n, sent)
			}
		}
		if st := co.Stats(); st.New != 2 || st.Busy != 1 || st.Done != 2 {
			t.Fatalf("claims: %+v", st)
		}
	})
}

// TestBurstOverReplicas: many users write at once, their updates spread
// over three replicas. Each replica paces itself within Telegram's limits;
// only the shared budget keeps the three together within them.
func TestBurstOverReplicas(t *testing.T) {
	t.Parallel()
	for _, coordinated := range []bool{true, false} {
		t.Run(map[bool]string{true: "coordinated", false: "alone"}[coordinated], func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var co *tf.Coordinator
				if coordinated {
					co = &tf.Coordinator{}
				}
				eng := &echoer{}
				fake, rs, _ := webhookReplicas(t, 3, tf.Options{EnforceLimits: true}, co, eng)
				const users = 90
				start := time.Now()
				var wg sync.WaitGroup
				statuses := make([]int, users)
				for i := range users {
					r := rs[i%len(rs)]
					wg.Go(func() { statuses[i] = r.post(t, textUpdate(1000+i, int64(8000+i), fmt.Sprintf("u%d", i))) })
				}
				wg.Wait()
				answered := time.Since(start)
				for i, st := range statuses {
					if st != http.StatusOK {
						t.Fatalf("update %d answered %d", i, st)
					}
				}
				advance(time.Minute) // every retry is over
				for i := range users {
					if n := len(fake.Sent(int64(8000 + i))); n != 1 {
						t.Fatalf("user %d got %d replies", i, n)
					}
				}
				st := fake.Stats()
				t.Logf("%d replies over %d replicas: %d answered 429 (global %d); webhooks answered after %v",
					users, len(rs), st.TooMany429, st.LimitGlobal, answered)
				if coordinated {
					if st.TooMany429 != 0 {
						t.Fatalf("coordinated replicas broke Telegram's limits: %+v", st)
					}
					// Every webhook waited for its reply, and the replies
					// went at the bot's pace: 90 of them take 3 s.
					if floor := users * time.Second / 30; answered < floor-time.Second/10 {
						t.Fatalf("all answered after %v: faster than the bot may send (%v)", answered, floor)
					}
					return
				}
				if st.LimitGlobal == 0 {
					t.Fatalf("three independent replicas kept within the bot's limit (%+v): the test shows nothing", st)
				}
			})
		})
	}
}

func TestWebhookAnswersOnceTheRepliesAreSent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hold time.Duration // how long Telegram takes to accept the reply
		// wantAnswer is when the webhook answers 200, after the POST.
		wantAnswer time.Duration
	}{
		{"reply accepted after 10 s", 10 * time.Second, 10 * time.Second},
		{"reply accepted after 50 s, past the bound", 50 * time.Second, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				co, eng := &tf.Coordinator{}, &echoer{}
				fake, rs, logs := webhookReplicas(t, 1, tf.Options{EnforceLimits: true}, co, eng)
				r := rs[0]
				r.gate.hold("sendMessage")
				posted := time.Now()
				answered := make(chan time.Time, 1)
				go func() {
					if st := r.post(t, textUpdate(201, 7201, "my code is 123456")); st != http.StatusOK {
						t.Errorf("answered %d", st)
					}
					answered <- time.Now()
				}()
				synctest.Wait()
				if len(eng.updates()) != 1 {
					t.Fatal("the update was not handed to the engine")
				}
				advance(min(tc.hold, tc.wantAnswer) - time.Millisecond)
				select {
				case at := <-answered:
					t.Fatalf("answered %v after the POST, before its reply reached Telegram", at.Sub(posted))
				default:
				}
				advance(tc.hold - min(tc.hold, tc.wantAnswer) + time.Millisecond)
				r.gate.release("sendMessage")
				at := <-answered
				if got := at.Sub(posted); got != tc.wantAnswer {
					t.Fatalf("answered %v after the POST; want %v", got, tc.wantAnswer)
				}
				synctest.Wait()
				sent := fake.Sent(7201)
				if len(sent) != 1 || (tc.wantAnswer == tc.hold && sent[0].Time.After(at)) {
					t.Fatalf("replies %+v, answered at %v", sent, at)
				}
				if !co.Handled(201) {
					t.Fatal("the update is not marked done")
				}
				// Telegram delivers it again: acknowledged, not handled again.
				if st := r.post(t, textUpdate(201, 7201, "my code is 123456")); st != http.StatusOK || len(eng.updates()) != 1 {
					t.Fatalf("a redelivery: %d, handled %d times", st, len(eng.updates()))
				}
				if late := strings.Contains(logs.String(), "not all sent in time"); late != (tc.wantAnswer < tc.hold) {
					t.Fatalf("logged late: %v", late)
				}
				if strings.Contains(logs.String(), "123456") {
					t.Fatal("the update's text was logged")
				}
			})
		})
	}
}

func TestWebhookReplyRefusedForGoodIsDone(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co, eng := &tf.Coordinator{}, &echoer{}
		fake, rs, _ := webhookReplicas(t, 1, tf.Options{}, co, eng)
		fake.SetBlocked(7301, true)
		if st := rs[0].post(t, textUpdate(301, 7301, "hi")); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
		if !co.Handled(301) || len(fake.Sent(7301)) != 0 {
			t.Fatalf("handled %v, sent %+v", co.Handled(301), fake.Sent(7301))
		}
	})
}

func TestWebhookWithoutCoordinatorAsksForARetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co, eng := &tf.Coordinator{}, &echoer{}
		fake, rs, logs := webhookReplicas(t, 1, tf.Options{}, co, eng)
		r := rs[0]
		r.conn.SetDown(true)
		if st := r.post(t, textUpdate(401, 7401, "my number is 9000000301")); st != http.StatusServiceUnavailable {
			t.Fatalf("with the coordinator unreachable: %d, want 503", st)
		}
		if len(eng.updates()) != 0 {
			t.Fatal("handled without a claim")
		}
		r.conn.SetDown(false)
		if st := r.post(t, textUpdate(401, 7401, "my number is 9000000301")); st != http.StatusOK || len(fake.Sent(7401)) != 1 {
			t.Fatalf("Telegram's retry: %d, %d replies", st, len(fake.Sent(7401)))
		}
		if !strings.Contains(logs.String(), "update_id=401") || strings.Contains(logs.String(), "9000000301") {
			t.Fatalf("logs: %s", logs)
		}
	})
}

// TestReplicaStoppedMidUpdate: a replica that stops before an update's
// reply reaches Telegram does not acknowledge it; another handles
// Telegram's redelivery once the claim lapses.
func TestReplicaStoppedMidUpdate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co, eng := &tf.Coordinator{}, &echoer{}
		fake, rs, _ := webhookReplicas(t, 2, tf.Options{}, co, eng)
		a, b := rs[0], rs[1]
		a.gate.hold("sendMessage") // a's reply never gets out
		u := textUpdate(501, 7501, "hello")
		answer := a.postAsync(t, u)
		synctest.Wait()
		_ = a.stop() // it reports the send it could not flush
		// 503, or the connection closed unanswered (as the in-memory
		// listener does when the server stops): unacknowledged either way.
		if st := <-answer; st != http.StatusServiceUnavailable && st != 0 {
			t.Fatalf("a replica that stopped before the reply went answered %d", st)
		}
		if st := b.post(t, u); st != http.StatusServiceUnavailable {
			t.Fatalf("redelivered while the claim is live: %d, want 503", st)
		}
		advance(time.Minute) // the claim lapses
		if st := b.post(t, u); st != http.StatusOK {
			t.Fatalf("redelivered after the claim lapsed: %d", st)
		}
		if sent := fake.Sent(7501); len(sent) != 1 || eng.count(7501) != 2 {
			t.Fatalf("%d replies, handled %d times; want the second replica's one reply", len(sent), eng.count(7501))
		}
	})
}

// TestChatOrderAcrossReplicas: Telegram delivers a chat's updates one at
// a time, each once the one before is acknowledged, here to the replicas
// in turn. Coordinated replicas answer only once their replies are sent,
// so the replies come in order, a second apart. Independent ones answer at
// once, so three of them write to the chat within the same moment.
func TestChatOrderAcrossReplicas(t *testing.T) {
	t.Parallel()
	for _, coordinated := range []bool{true, false} {
		t.Run(map[bool]string{true: "coordinated", false: "alone"}[coordinated], func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var co *tf.Coordinator
				if coordinated {
					co = &tf.Coordinator{}
				}
				fake, rs, _ := webhookReplicas(t, 3, tf.Options{EnforceLimits: true}, co, &echoer{})
				chat, from := tf.Private(7601), tf.User{ID: 7601, FirstName: "O"}
				const n = 9
				for i := range n {
					fake.SendText(chat, from, fmt.Sprintf("m%d", i))
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				sent, err := fake.WaitSent(ctx, 7601, n)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range sent {
					got = append(got, m.Text)
				}
				st := fake.Stats()
				t.Logf("replies %v; %d answered 429", got, st.TooMany429)
				for i, r := range rs {
					if r.gate.count("sendMessage") == 0 {
						t.Fatalf("replica %d answered nothing: the updates did not go round", i)
					}
				}
				if !coordinated {
					if st.LimitChat == 0 {
						t.Fatalf("independent replicas kept to the chat's limit (%+v): the test shows nothing", st)
					}
					return
				}
				for i, m := range sent {
					if want := fmt.Sprintf("re: m%d", i); m.Text != want {
						t.Fatalf("reply %d is %q, want %q", i, m.Text, want)
					}
				}
				if st.TooMany429 != 0 {
					t.Fatalf("%+v", st)
				}
			})
		})
	}
}

// TestRevealAcrossReplicas: a released record still goes out as the edit
// of a placeholder whose deletion is scheduled, and is deleted on time;
// the update is acknowledged once the record is edited in.
func TestRevealAcrossReplicas(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		lns := []*tf.Listener{newListener(t), newListener(t)}
		fake := tf.NewUnstarted(token, tf.Options{EnforceLimits: true, WebhookClient: balancer(lns...)})
		t.Cleanup(fake.Close)
		co, dels := &tf.Coordinator{}, &tf.Deletions{} // one schedule, as in one database
		log, logs := testLogger()
		for _, ln := range lns {
			startReplica(t, fake, releaser{}, co, ln, log, func(o *telegram.Options) { o.Deletions = dels })
		}
		for i, user := range []int64{7701, 7702} {
			fake.SendText(tf.Private(user), tf.User{ID: user, FirstName: "A"}, "show me")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := fake.WaitFor(ctx, func() bool { return fake.Webhook().PendingUpdates == 0 }); err != nil {
				t.Fatal(err)
			}
			if e := fake.Edits(user); len(e) != 1 || !strings.Contains(e[0].Text, "Asha") {
				t.Fatalf("update %d acknowledged before the record was edited in: %+v", i, e)
			}
		}
		for _, user := range []int64{7701, 7702} {
			if cs := assertAllDeletedOnTime(t, fake, user); len(cs) != 1 {
				t.Fatalf("copies: %+v", cs)
			}
		}
		if strings.Contains(logs.String(), "Asha") {
			t.Fatal("the record was logged")
		}
	})
}
