// SPDX-License-Identifier: Apache-2.0
#include "auth/bcrypt.hh"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "auth/blowfish_pi.hh"
#include "auth/secret.hh"

namespace rp::auth {

namespace {

// bcrypt's own base64 alphabet (not RFC 4648's), without padding.
constexpr char alphabet[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int decode_char(char c) noexcept {
    const char* p = std::strchr(alphabet, c);
    return c != '\0' && p != nullptr ? static_cast<int>(p - alphabet) : -1;
}

std::string encode(const unsigned char* data, std::size_t len) {
    std::string out;
    for (std::size_t i = 0; i < len;) {
        unsigned c1 = data[i++];
        out += alphabet[c1 >> 2];
        c1 = (c1 & 0x03) << 4;
        if (i >= len) {
            out += alphabet[c1];
            break;
        }
        unsigned c2 = data[i++];
        out += alphabet[c1 | (c2 >> 4)];
        c1 = (c2 & 0x0f) << 2;
        if (i >= len) {
            out += alphabet[c1];
            break;
        }
        c2 = data[i++];
        out += alphabet[c1 | (c2 >> 6)];
        out += alphabet[c2 & 0x3f];
    }
    return out;
}

// Decodes exactly `len` bytes from `text`; false on a character outside the alphabet.
bool decode(std::string_view text, unsigned char* out, std::size_t len) noexcept {
    std::size_t o = 0;
    std::size_t i = 0;
    while (o < len) {
        int c[4] = {-1, -1, -1, -1};
        for (int k = 0; k < 4 && i < text.size(); ++k) {
            c[k] = decode_char(text[i++]);
        }
        if (c[0] < 0 || c[1] < 0) {
            return false;
        }
        out[o++] = static_cast<unsigned char>((c[0] << 2) | ((c[1] & 0x30) >> 4));
        if (o >= len) {
            break;
        }
        if (c[2] < 0) {
            return false;
        }
        out[o++] = static_cast<unsigned char>(((c[1] & 0x0f) << 4) | ((c[2] & 0x3c) >> 2));
        if (o >= len) {
            break;
        }
        if (c[3] < 0) {
            return false;
        }
        out[o++] = static_cast<unsigned char>(((c[2] & 0x03) << 6) | c[3]);
    }
    return true;
}

struct State {
    std::uint32_t p[18];
    std::uint32_t s[4][256];
};

inline std::uint32_t f(const State& st, std::uint32_t x) noexcept {
    return ((st.s[0][x >> 24] + st.s[1][(x >> 16) & 0xff]) ^ st.s[2][(x >> 8) & 0xff]) +
           st.s[3][x & 0xff];
}

inline void encipher(const State& st, std::uint32_t& l, std::uint32_t& r) noexcept {
    std::uint32_t xl = l;
    std::uint32_t xr = r;
    for (int i = 0; i < 16; i += 2) {
        xl ^= st.p[i];
        xr ^= f(st, xl);
        xr ^= st.p[i + 1];
        xl ^= f(st, xr);
    }
    xl ^= st.p[16];
    xr ^= st.p[17];
    l = xr;
    r = xl;
}

// The next 32 bits of `data`, read cyclically from *at.
std::uint32_t stream_word(const unsigned char* data, std::size_t len, std::size_t& at) noexcept {
    std::uint32_t w = 0;
    for (int i = 0; i < 4; ++i) {
        w = (w << 8) | data[at];
        at = at + 1 == len ? 0 : at + 1;
    }
    return w;
}

// Blowfish's key schedule with the salt mixed in (ExpandKey of the paper);
// `salt` null is ExpandKey(state, 0, key).
void expand_key(State& st, const unsigned char* salt, const unsigned char* key,
                std::size_t key_len) noexcept {
    std::size_t k = 0;
    for (std::uint32_t& p : st.p) {
        p ^= stream_word(key, key_len, k);
    }
    std::size_t s = 0;
    std::uint32_t l = 0;
    std::uint32_t r = 0;
    auto next = [&](std::uint32_t& a, std::uint32_t& b) {
        if (salt != nullptr) {
            l ^= stream_word(salt, 16, s);
            r ^= stream_word(salt, 16, s);
        }
        encipher(st, l, r);
        a = l;
        b = r;
    };
    for (int i = 0; i < 18; i += 2) {
        next(st.p[i], st.p[i + 1]);
    }
    for (auto& box : st.s) {
        for (int i = 0; i < 256; i += 2) {
            next(box[i], box[i + 1]);
        }
    }
}

struct Parsed {
    char minor = 0; // 'a', 'b' or 'y'
    int cost = 0;
    unsigned char salt[16] = {};
    std::string_view hash; // the 31 characters after the salt
};

std::optional<Parsed> parse(std::string_view h) noexcept {
    // $2y$10$ + 22 salt + 31 hash = 60 characters
    if (h.size() != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$') {
        return std::nullopt;
    }
    Parsed p;
    p.minor = h[2];
    if (p.minor != 'a' && p.minor != 'b' && p.minor != 'y') {
        return std::nullopt;
    }
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9') {
        return std::nullopt;
    }
    p.cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (p.cost < 4 || p.cost > 31) {
        return std::nullopt;
    }
    if (!decode(h.substr(7, 22), p.salt, 16)) {
        return std::nullopt;
    }
    p.hash = h.substr(29);
    for (char c : p.hash) {
        if (decode_char(c) < 0) {
            return std::nullopt;
        }
    }
    return p;
}

// The 23 bytes of bcrypt's output for `password`.
std::array<unsigned char, 23> compute(std::string_view password, int cost,
                                      const unsigned char salt[16]) {
    // The key is the password with its terminating NUL, at most 72 bytes
    // ($2b$/$2y$; $2a$ agrees for every password shorter than 256 bytes).
    unsigned char key[73];
    std::size_t key_len = password.size() < 72 ? password.size() : 72;
    std::memcpy(key, password.data(), key_len);
    key[key_len] = 0;
    key_len = key_len < 72 ? key_len + 1 : 72;

    State st;
    std::memcpy(st.p, blowfish_init::p, sizeof st.p);
    std::memcpy(st.s, blowfish_init::s, sizeof st.s);
    expand_key(st, salt, key, key_len);
    const std::uint64_t rounds = std::uint64_t{1} << cost;
    for (std::uint64_t i = 0; i < rounds; ++i) {
        expand_key(st, nullptr, key, key_len);
        expand_key(st, nullptr, salt, 16);
    }
    static constexpr char magic[] = "OrpheanBeholderScryDoubt";
    std::uint32_t c[6];
    std::size_t at = 0;
    for (std::uint32_t& w : c) {
        w = stream_word(reinterpret_cast<const unsigned char*>(magic), 24, at);
    }
    for (int i = 0; i < 64; ++i) {
        for (int j = 0; j < 6; j += 2) {
            encipher(st, c[j], c[j + 1]);
        }
    }
    std::array<unsigned char, 23> out{};
    unsigned char bytes[24];
    for (int i = 0; i < 6; ++i) {
        bytes[4 * i] = static_cast<unsigned char>(c[i] >> 24);
        bytes[4 * i + 1] = static_cast<unsigned char>(c[i] >> 16);
        bytes[4 * i + 2] = static_cast<unsigned char>(c[i] >> 8);
        bytes[4 * i + 3] = static_cast<unsigned char>(c[i]);
    }
    std::memcpy(out.data(), bytes, 23);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(&st, sizeof st);
    return out;
}

} // namespace

bool is_bcrypt(std::string_view hash) noexcept { return parse(hash).has_value(); }

std::string bcrypt_with_salt(std::string_view password, int cost, std::string_view prefix,
                             const unsigned char salt[16]) {
    auto out = compute(password, cost, salt);
    std::string s(prefix);
    s += static_cast<char>('0' + cost / 10);
    s += static_cast<char>('0' + cost % 10);
    s += '$';
    s += encode(salt, 16);
    s += encode(out.data(), out.size());
    return s;
}

bool bcrypt_verify(std::string_view password, std::string_view hash) {
    auto p = parse(hash);
    if (!p) {
        return false;
    }
    std::string mine = bcrypt_with_salt(password, p->cost, hash.substr(0, 4), p->salt);
    // The hash part only: a salt's last character carries 2 bits, so a
    // hash may spell it differently from the canonical form made here.
    return secret_equal(std::string_view(mine).substr(29), p->hash);
}

std::optional<std::string> bcrypt_hash(std::string_view password, int cost) {
    if (cost < 4 || cost > 31) {
        return std::nullopt;
    }
    unsigned char salt[16];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        return std::nullopt;
    }
    return bcrypt_with_salt(password, cost, "$2y$", salt);
}

} // namespace rp::auth
