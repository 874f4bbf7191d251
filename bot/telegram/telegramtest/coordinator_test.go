package telegramtest

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
)

func TestCoordinatorKeepsTheContract(t *testing.T) {
	t.Parallel()
	for _, c := range CoordinatorChecks {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				co := &Coordinator{}
				c.Run(t, co.Conn(), co)
			})
		})
	}
}

func TestCoordinatorConnDown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co := &Coordinator{}
		a, b := co.Conn(), co.Conn()
		ctx := context.Background()
		const lease = 10 * time.Second
		lead, release, err := a.Lead(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		standby := leadAsync(ctx, b, lease)

		// Cut off, a stops leading at its next renewal, before the lease
		// lapses; b takes over once it has.
		cut := time.Now()
		a.SetDown(true)
		<-lead.Done()
		if stopped := time.Since(cut); stopped > lease/3 {
			t.Fatalf("a led on %v after it was cut off", stopped)
		}
		r := leads(t, "b", standby, lease)
		if took := time.Since(cut); took > lease {
			t.Fatalf("b took over %v after a was cut off", took)
		}
		release() // while down: nothing reaches the coordinator

		for name, err := range map[string]error{
			"Lead":          func() error { _, _, err := a.Lead(ctx, lease); return err }(),
			"ClaimUpdate":   func() error { _, err := a.ClaimUpdate(ctx, 1, lease); return err }(),
			"UpdateDone":    a.UpdateDone(ctx, 1),
			"ReleaseUpdate": a.ReleaseUpdate(ctx, 1),
			"Reserve":       func() error { _, _, err := a.Reserve(ctx, slot(1)); return err }(),
			"Backoff":       a.Backoff(ctx, 1, time.Second),
		} {
			if !errors.Is(err, ErrCoordinatorDown) {
				t.Errorf("%s while down: %v", name, err)
			}
		}
		if st := co.Stats(); st.New+st.Marked+st.Booked+st.Backoffs != 0 || st.Leads != 2 {
			t.Fatalf("calls through a cut connection took effect: %+v", st)
		}
		a.SetDown(false)
		claimIs(t, a, 1, lease, telegram.ClaimNew)
		r.release()
	})
}

func TestCoordinatorForgetsOldMarks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		co := &Coordinator{}
		ctx := context.Background()
		claimIs(t, co, 1, time.Minute, telegram.ClaimNew)
		noErr(t, "UpdateDone", co.UpdateDone(ctx, 1))
		time.Sleep(24 * time.Hour) // Telegram's longest redelivery: still done
		claimIs(t, co, 1, time.Minute, telegram.ClaimDone)
		time.Sleep(DoneRetention)
		claimIs(t, co, 2, time.Minute, telegram.ClaimNew) // a call that prunes
		if co.Handled(1) {
			t.Fatal("a mark older than DoneRetention is kept")
		}
	})
}
