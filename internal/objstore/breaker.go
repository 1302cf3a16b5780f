package objstore

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// breakerThreshold is how many connection attempts in a row must fail, across all of a
// store's requests, before those failures are no longer retried.
const breakerThreshold = 8

// breaker stops retrying connections to an endpoint that refuses them. Each request alone
// retries for about 40 s (6 attempts, exponential backoff): a push sends many requests at
// once to every region, and one region whose S3 died held the others' next phase back for
// those 40 s. Once breakerThreshold attempts in a row could not connect, connection
// failures fail at once; throttling and server errors keep every retry. Any answer from
// the endpoint, even an error status, closes the breaker again.
type breaker struct {
	mu       sync.Mutex
	failures int // connection failures since the endpoint last answered
}

// retryable is a retry.IsErrorRetryable: it has an opinion only about connection
// failures, and only once the breaker is open.
func (b *breaker) retryable(err error) aws.Ternary {
	if !isDialError(err) {
		return aws.UnknownTernary
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.failures >= breakerThreshold {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

func (b *breaker) answered() {
	b.mu.Lock()
	b.failures = 0
	b.mu.Unlock()
}

// open reports whether connection failures are failing at once.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= breakerThreshold
}

// isDialError reports a failure to connect (refused, unreachable, dial timeout): the
// request never reached the server.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// middleware closes the breaker whenever an attempt got an HTTP response.
func (b *breaker) middleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("regionmirrorBreaker",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			// A failed send leaves a response without an HTTP response in it.
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil && resp.Response != nil && resp.StatusCode > 0 {
				b.answered()
			}
			return out, md, err
		}), middleware.After)
}
