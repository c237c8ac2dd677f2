// Package mqtt publishes Midline's telemetry: a durable, bounded on-disk outbox for events and
// contours that survives broker outages and restarts, and a client that drains it in order.
//
// The client (paho) keeps its own session; the outbox is what makes a message durable: it is
// written crash-safely before Enqueue returns and removed only after the broker's PUBACK.
package mqtt
