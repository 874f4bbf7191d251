package telegramtest_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

func Example() {
	const token = "123:fake"
	fake := telegramtest.New(token, telegramtest.Options{})
	defer fake.Close()

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	bot, err := tgbotapi.NewBotAPIWithClient(token, fake.URL()+"/bot%s/%s", client)
	if err != nil {
		fmt.Println(err)
		return
	}

	// A user writes /start; the bot polls, replies and confirms the update.
	user := telegramtest.User{ID: 42, FirstName: "Asha"}
	fake.SendText(telegramtest.Private(user.ID), user, "/start")
	ups, _ := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
	msg := ups[0].Message
	_, _ = bot.Send(tgbotapi.NewMessage(msg.Chat.ID, "Hello, "+msg.From.FirstName))
	_, _ = bot.GetUpdates(tgbotapi.UpdateConfig{Offset: ups[0].UpdateID + 1})

	sent, _ := fake.WaitSent(context.Background(), user.ID, 1)
	fmt.Println(msg.Command(), "→", sent[0].Text, "| pending:", fake.Pending())
	// Output: start → Hello, Asha | pending: 0
}
