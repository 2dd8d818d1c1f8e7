package main

import (
	"context"
	"errors"
)

func cmdDemo(ctx context.Context, args []string) error    { return errors.New("todo") }
func cmdMeasure(ctx context.Context, args []string) error { return errors.New("todo") }
