/* The demo storefront's own page script: what a store's theme would do with the SDK. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("demo-data").textContent);
  var CART_KEY = "demo.cart";

  function say(state) {
    document.getElementById("demo-status").textContent = data.status[state] || state;
  }

  function showPermission() {
    var state = "Notification" in window ? Notification.permission : "unsupported";
    document.getElementById("demo-permission").textContent = data.status[state] || state;
  }

  function loadCart() {
    try {
      return JSON.parse(localStorage.getItem(CART_KEY)) || { id: "", items: [] };
    } catch (e) {
      return { id: "", items: [] };
    }
  }

  function saveCart(cart) {
    localStorage.setItem(CART_KEY, JSON.stringify(cart));
    renderCart(cart);
  }

  function cartValue(cart) {
    return cart.items.reduce(function (sum, item) { return sum + parseFloat(item.price) * item.quantity; }, 0).toFixed(2);
  }

  function renderCart(cart) {
    var list = document.getElementById("demo-cart");
    list.textContent = "";
    if (!cart.items.length) {
      var empty = document.createElement("li");
      empty.textContent = list.getAttribute("data-empty");
      list.appendChild(empty);
      return;
    }
    cart.items.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = item.quantity + " × " + item.title + " — " + item.price + " " + data.currency_label;
      list.appendChild(li);
    });
  }

  function randomId(prefix) {
    return prefix + "-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  }

  var actions = {
    "subscribe": function () {
      tanbih.subscribe().then(function (result) { say(result.status); showPermission(); }, function () { say("error"); });
    },
    "sign-in": function () {
      var c = data.customer;
      tanbih.identify(c.external_id, { user_hash: c.user_hash, traits: c.traits })
        .then(function () { say("identified"); }, function () { say("error"); });
    },
    "add-to-cart": function () {
      var cart = loadCart();
      if (!cart.id) cart.id = randomId("demo-cart");
      var product = data.product;
      var line = cart.items.filter(function (item) { return item.product_id === product.product_id; })[0];
      if (line) {
        line.quantity += 1;
      } else {
        cart.items.push({
          product_id: product.product_id, title: product.title, url: product.url,
          price: product.price, quantity: 1, category: product.category,
        });
      }
      saveCart(cart);
      tanbih.track("cart_updated", { cart_id: cart.id, items: cart.items, value: cartValue(cart), currency: data.currency })
        .then(function () { say("added"); }, function () { say("error"); });
    },
    "place-order": function () {
      var cart = loadCart();
      if (!cart.items.length) return;
      tanbih.track("order_placed", {
        order_id: randomId("demo-order"), cart_id: cart.id, items: cart.items,
        value: cartValue(cart), currency: data.currency,
      }).then(function () {
        saveCart({ id: "", items: [] });
        say("ordered");
      }, function () { say("error"); });
    },
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-demo]");
    if (!button || !actions[button.getAttribute("data-demo")]) return;
    if (!window.tanbih || !window.tanbih.loaded) return; // the SDK is still loading
    actions[button.getAttribute("data-demo")]();
  });
  ["subscribed", "declined", "denied"].forEach(function (name) {
    document.addEventListener("tanbih:" + name, function () { say(name); showPermission(); });
  });

  showPermission();
  renderCart(loadCart());
})();
