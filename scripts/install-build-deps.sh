#!/usr/bin/env bash
# Debian packages the plain workspace build needs on a fresh machine: samael (the `saml` feature,
# on by default) links libxmlsec1/libxml2 through bindgen, which needs libclang; xmlsec1 is the
# real SAML IdP's signer in the tests. Sourced by scripts/test.sh and the bench scripts, which
# build the release binary themselves.
saml_debs=(libxmlsec1-dev libxml2-dev libclang-dev libssl-dev pkg-config xmlsec1)
if ! dpkg -s "${saml_debs[@]}" >/dev/null 2>&1; then
  echo "installing ${saml_debs[*]} (the SAML build and its real IdP)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${saml_debs[@]}" >/dev/null
fi
