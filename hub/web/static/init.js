// Starts GOV.UK Frontend's components (error summary focus, service navigation menu, skip
// link, notification banner). A module, so browsers too old for GOV.UK Frontend skip it
// and get the plain pages; kept out of the page so the CSP needs no inline script.
import { initAll } from "/static/vendor/govuk/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
