package secagg

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
	"github.com/tuneinsight/lattigo/v5/utils/structs"
)

// lattigo v5.0.7 draws the secret randomness of rlwe.KeyGenerator (secret keys),
// rlwe.Encryptor (public-key encryption), mhe.PublicKeyGenProtocol (key-generation noise)
// and mhe.Thresholdizer (Shamir polynomials) from samplers it creates internally over
// sampling.NewPRNG, that is crypto/rand, and keeps unexported. Encryptor.WithPRNG replaces
// only the uniform sampler of secret-key encryption (c1), not the ternary u and Gaussian
// e0, e1 of public-key encryption; KeyGenerator (which embeds an Encryptor) takes no PRNG at
// all. So the four steps below redo, with lattigo's public ring samplers over a PRNG of our
// choice, exactly what those methods compute: the same distributions (Parameters.Xs, Xe,
// uniform), the same operations, in the same domains. Everything else (CRP sampling, share
// aggregation, Shamir evaluation and combination, decoding) still runs in lattigo. These are
// used only with DeterministicRandomness; the secure default calls lattigo's own methods.

// genSecretKey samples a secret key from Xs, as rlwe.KeyGenerator.GenSecretKey: ternary
// coefficients, then NTT and Montgomery form.
func genSecretKey(params rlwe.Parameters, prng sampling.PRNG) (*rlwe.SecretKey, error) {
	xs, err := ring.NewSampler(prng, params.RingQ(), params.Xs(), false)
	if err != nil {
		return nil, fmt.Errorf("secret-key sampler: %w", err)
	}
	sk := rlwe.NewSecretKey(params)
	xs.Read(sk.Value.Q)
	ringQP := params.RingQP()
	if levelP := sk.LevelP(); levelP > -1 {
		ringQP.ExtendBasisSmallNormAndCenter(sk.Value.Q, levelP, sk.Value.Q, sk.Value.P)
	}
	ringQP.NTT(sk.Value, sk.Value)
	ringQP.MForm(sk.Value, sk.Value)
	return sk, nil
}

// genPublicKeyShare computes a member's share of the collective public key, as
// mhe.PublicKeyGenProtocol.GenShare: e − s·crp with e from Xe.
func genPublicKeyShare(params rlwe.Parameters, prng sampling.PRNG, sk *rlwe.SecretKey, crp mhe.PublicKeyGenCRP) (mhe.PublicKeyGenShare, error) {
	xe, err := ring.NewSampler(prng, params.RingQ(), params.Xe(), false)
	if err != nil {
		return mhe.PublicKeyGenShare{}, fmt.Errorf("key-generation noise sampler: %w", err)
	}
	ringQP := params.RingQP()
	share := mhe.PublicKeyGenShare{Value: ringQP.NewPoly()}
	xe.Read(share.Value.Q)
	if ringQP.RingP != nil {
		ringQP.ExtendBasisSmallNormAndCenter(share.Value.Q, params.MaxLevelP(), share.Value.Q, share.Value.P)
	}
	ringQP.NTT(share.Value, share.Value)
	ringQP.MForm(share.Value, share.Value)
	ringQP.MulCoeffsMontgomeryThenSub(sk.Value, crp.Value, share.Value)
	return share, nil
}

// genShamirPolynomial samples a Shamir polynomial of degree threshold−1 with constant term
// sk and uniform other coefficients, as mhe.Thresholdizer.GenShamirPolynomial.
func genShamirPolynomial(params rlwe.Parameters, prng sampling.PRNG, threshold int, sk *rlwe.SecretKey) (mhe.ShamirPolynomial, error) {
	if threshold < 1 {
		return mhe.ShamirPolynomial{}, fmt.Errorf("threshold %d, need ≥ 1", threshold)
	}
	ringQP := params.RingQP()
	us := ringqp.NewUniformSampler(prng, *ringQP)
	coeffs := make([]ringqp.Poly, threshold)
	coeffs[0] = *sk.Value.CopyNew()
	for i := 1; i < threshold; i++ {
		coeffs[i] = ringQP.NewPoly()
		us.Read(coeffs[i])
	}
	return mhe.ShamirPolynomial{Value: structs.Vector[ringqp.Poly](coeffs)}, nil
}

// encryptPk encrypts pt under pk into ct (degree 1), as rlwe.Encryptor.Encrypt with a public
// key and no auxiliary modulus P (secagg's parameters have none, and a single prime, so
// plaintexts are at the top level): (u·p0 + e0 + m, u·p1 + e1) with u from Xs and e0, e1
// from Xe, in the NTT domain. buf is a scratch polynomial of ring Q.
func encryptPk(params rlwe.Parameters, prng sampling.PRNG, pk *rlwe.PublicKey, pt *rlwe.Plaintext, ct *rlwe.Ciphertext, buf ring.Poly) error {
	if params.PCount() != 0 {
		// NewParameters never builds a modulus P; parameters from elsewhere are refused.
		return fmt.Errorf("parameters with %d auxiliary primes P: secagg uses a single modulus Q without P (build them with secagg.NewParameters)", params.PCount())
	}
	if !pt.IsNTT || pt.Level() != params.MaxLevel() {
		return fmt.Errorf("plaintext must be in the NTT domain at the top level")
	}
	xs, err := ring.NewSampler(prng, params.RingQ(), params.Xs(), false)
	if err != nil {
		return fmt.Errorf("encryption sampler: %w", err)
	}
	xe, err := ring.NewSampler(prng, params.RingQ(), params.Xe(), false)
	if err != nil {
		return fmt.Errorf("encryption noise sampler: %w", err)
	}
	*ct.MetaData = *pt.MetaData
	ct.Resize(1, pt.Level())
	ringQ := params.RingQ()
	c0, c1 := ct.Value[0], ct.Value[1]

	xs.Read(buf) // u
	ringQ.NTT(buf, buf)
	ringQ.MulCoeffsMontgomery(buf, pk.Value[0].Q, c0) // NTT(u·p0)
	ringQ.MulCoeffsMontgomery(buf, pk.Value[1].Q, c1) // NTT(u·p1)

	xe.Read(buf) // e0
	ringQ.NTT(buf, buf)
	ringQ.Add(c0, buf, c0)
	xe.Read(buf) // e1
	ringQ.NTT(buf, buf)
	ringQ.Add(c1, buf, c1)

	ringQ.Add(c0, pt.Value, c0) // + m
	return nil
}
