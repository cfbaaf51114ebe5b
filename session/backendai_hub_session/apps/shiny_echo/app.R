# The bundled Shiny app of R sessions (served at <session>/shiny/ when ~/shiny/app.R does not exist):
# what is typed in "msg" comes back in "echo" over Shiny's websocket.
library(shiny)

ui <- fluidPage(
  titlePanel("Shiny echo"),
  textInput("msg", "Message", ""),
  verbatimTextOutput("echo")
)

server <- function(input, output, session) {
  output$echo <- renderText(paste0("echo:", input$msg))
}

shinyApp(ui, server)
