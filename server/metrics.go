package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry      *prometheus.Registry
	rounds        *prometheus.CounterVec
	round         prometheus.Gauge
	clients       prometheus.Gauge
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	ingress       prometheus.Counter
	ingressBytes  atomic.Int64
	epsilon       prometheus.Gauge
	userEpsilon   prometheus.Gauge
	roundDuration prometheus.Histogram
	accuracy      *prometheus.GaugeVec
	rejected      *prometheus.CounterVec
}

// NewMetrics registers the server's metrics on a new registry (with the Go and process
// collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry:    prometheus.NewRegistry(),
		rounds:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "confide_rounds_total", Help: "Rounds finished, by outcome (ok or failed)."}, []string{"outcome"}),
		round:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "confide_round", Help: "Number of the last finished round."}),
		clients:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "confide_connected_clients", Help: "Clients currently online."}),
		bytesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "confide_received_bytes_total", Help: "Payload bytes received from clients."}),
		bytesOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "confide_sent_bytes_total", Help: "Payload bytes sent to clients."}),
		ingress:     prometheus.NewCounter(prometheus.CounterOpts{Name: "confide_ingress_bytes_total", Help: "Bytes of every gRPC message received (wire length: clients' and aggregators' calls, headers and uploads), the server's ingress."}),
		epsilon:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "confide_epsilon_max", Help: "Largest record-level ε of any client (DP-SGD, at dp.delta), as the server accounts it from the fit tasks it issued less those the client refused, or as a client reported it if more."}),
		userEpsilon: prometheus.NewGauge(prometheus.GaugeOpts{Name: "confide_user_level_epsilon", Help: "User-level ε of the federation's rounds so far (DP-FedAvg, at dp.user_level.delta); 0 when user-level DP is off."}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "confide_round_duration_seconds", Help: "Wall time from a round's start to its model update.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14)}),
		accuracy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "confide_eval_accuracy", Help: "Accuracy of the global model after the last evaluated round."}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "confide_rejected_messages_total", Help: "Client messages the coordinator refused, by reason."}, []string{"reason"}),
	}
	m.Registry.MustRegister(m.rounds, m.round, m.clients, m.bytesIn, m.bytesOut, m.ingress, m.epsilon, m.userEpsilon, m.roundDuration, m.accuracy, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addIngress counts n wire bytes received.
func (m *Metrics) addIngress(n int) {
	m.ingress.Add(float64(n))
	m.ingressBytes.Add(int64(n))
}

// IngressBytes returns the wire bytes of every gRPC message the server received so far
// (confide_ingress_bytes_total).
func (m *Metrics) IngressBytes() int64 { return m.ingressBytes.Load() }
