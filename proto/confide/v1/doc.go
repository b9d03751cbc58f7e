// Package confidev1 is the generated Go code of the Confide federation protocol
// (federation.proto, protobuf package confide.v1): the Federation gRPC service and its
// messages; and of the inference service of `confide model serve` (inference.proto): the
// Inference service's Predict. Do not edit the .pb.go files; change the .proto and run
// scripts/genproto.sh.
//
// The coordinator (package server) and the client round logic (package client) speak these
// message types directly, in the way etcd raft speaks raftpb: a Task or Result with its blobs
// inline is what the simulator passes in memory; the gRPC transport sends the header and
// streams each blob's bytes in chunks.
package confidev1
