package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
)

// A Trainer with its own training loop keeps the client's privacy ledger through a
// PrivacyAccount: admit the task's DP-SGD schedule before training, charge it before the
// parameters leave Fit.
func ExamplePrivacyAccount() {
	account, err := client.OpenPrivacyAccount(client.NewMemoryStore(), &dp.Budget{Epsilon: 3, Delta: 1e-5}, false)
	if err != nil {
		panic(err)
	}
	defer account.Close()
	task := client.DPConfig{NoiseMultiplier: 1.1, MaxGradNorm: 1, Delta: 1e-5, SampleRate: 0.01, Steps: 1000}
	step := accountant.Step{NoiseMultiplier: task.NoiseMultiplier, SampleRate: task.SampleRate, Steps: task.Steps}
	fmt.Println("admitted:", account.Admit(task, step) == nil)
	// … train with the schedule …
	eps, err := account.Charge(context.Background(), step)
	if err != nil {
		panic(err)
	}
	fmt.Printf("ε spent: %.3f of 3\n", eps)
	// Ten times as many steps would exceed the budget; a task without noise always does.
	err = account.Admit(task, accountant.Step{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 10000})
	fmt.Println("refused:", errors.Is(err, client.ErrBudgetExceeded))
	fmt.Println("refused without noise:", errors.Is(account.Admit(client.DPConfig{}, accountant.Step{}), client.ErrBudgetExceeded))
	// Output:
	// admitted: true
	// ε spent: 1.712 of 3
	// refused: true
	// refused without noise: true
}
