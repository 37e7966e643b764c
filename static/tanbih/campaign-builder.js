/* The campaign builder: show only the schedule fields that the chosen "when" uses. Without this script every
 * field stays visible (and the server ignores the ones that don't apply). */
(function () {
  "use strict";
  function update() {
    var chosen = document.querySelector("input[name=schedule_kind]:checked");
    var kind = chosen ? chosen.value : "now";
    document.querySelectorAll("[data-when]").forEach(function (block) {
      block.hidden = block.getAttribute("data-when").split(" ").indexOf(kind) === -1;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[name=schedule_kind]").forEach(function (radio) {
      radio.addEventListener("change", update);
    });
    update();
  });
})();
